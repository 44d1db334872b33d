# cairn — the two commands a user needs are `make cluster` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CAIRN := $(VENV)/bin/cairn
CLUSTER_DIR ?= .cluster

.PHONY: venv system-deps test test-fast lint proto render cluster bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# The tests drive the real etcd server and etcdctl 3.4, Prometheus, promtool, Alertmanager and
# amtool (Debian packages).
system-deps:
	@if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null \
	    || ! command -v promtool >/dev/null || ! command -v prometheus-alertmanager >/dev/null \
	    || ! command -v prometheus-node-exporter >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client prometheus prometheus-alertmanager prometheus-node-exporter >/dev/null; \
	  else \
	    echo "need the Debian packages etcd-server, etcd-client, prometheus, prometheus-alertmanager and prometheus-node-exporter (run as root or install them)"; exit 1; \
	  fi; \
	fi

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: venv system-deps lint
	$(PY) -m pytest

test-fast: venv
	$(PY) -m pytest -m "not slow"

proto: venv
	$(PY) -m cairn.proto.generate

# Regenerate dashboards/*.json and alerts/*.yml from server/cairn/observe/.
render: venv
	$(CAIRN) render

cluster: venv
	$(CAIRN) dev --dir $(CLUSTER_DIR) $(if $(PLAINTEXT),--no-tls)

bench: venv system-deps
	$(CAIRN) bench --against-etcd

clean:
	rm -rf $(VENV) $(CLUSTER_DIR) build *.egg-info
