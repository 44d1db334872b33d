"""The real monitoring stack for live tests: Prometheus, Alertmanager, node_exporter (Debian
packages) on loopback in a test's own directory, and a webhook receiver that records every
notification Alertmanager delivers.

Prometheus scrapes and evaluates every second and loads rules rendered by `cairn render` with
shortened `for:` and windows; Alertmanager runs the committed example configuration with only
the receivers' URLs and the grouping delays changed, so its routes and inhibitions are the ones
operators deploy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml
from tests.support.servers import free_port

PROMETHEUS = "prometheus"
ALERTMANAGER = "prometheus-alertmanager"
NODE_EXPORTER = "prometheus-node-exporter"


def missing_binaries() -> list[str]:
    return [b for b in (PROMETHEUS, ALERTMANAGER, NODE_EXPORTER) if shutil.which(b) is None]


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


class Daemon:
    """One monitoring process on a free loopback port, logging into its directory."""

    def __init__(self, name: str, base: Path) -> None:
        self.name = name
        self.dir = base / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log_path = self.dir / "out.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, argv: Sequence[str], ready_path: str, timeout: float = 30.0) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
            try:
                http_get(f"http://{self.address}{ready_path}", timeout=1.0)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} not ready:\n{self.log_tail()}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no log)"


@dataclass
class Notification:
    receiver: str
    """The path the webhook was posted to: the Alertmanager receiver's name."""
    received_at: float
    body: dict


class WebhookReceiver:
    """An HTTP server standing in for the pager and the ticket system."""

    def __init__(self) -> None:
        self.notifications: list[Notification] = []
        self._lock = threading.Lock()
        received = self.notifications
        lock = self._lock

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                with lock:
                    received.append(Notification(self.path.strip("/"), time.time(), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, receiver: str) -> str:
        return f"http://127.0.0.1:{self.port}/{receiver}"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def alerts(self, since: float = 0.0) -> list[tuple[str, dict]]:
        """(receiver, alert) for every alert in every notification received after ``since``."""
        with self._lock:
            return [
                (n.receiver, alert)
                for n in self.notifications
                if n.received_at >= since
                for alert in n.body["alerts"]
            ]

    def wait_for(
        self,
        alertname: str,
        status: str,
        since: float,
        timeout: float,
        labels: dict[str, str] | None = None,
        describe: Callable[[], str] = lambda: "",
    ) -> tuple[str, dict]:
        """The first (receiver, alert) named ``alertname`` in ``status`` with ``labels``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for receiver, alert in self.alerts(since):
                wanted = {"alertname": alertname, **(labels or {})}
                matches = all(alert["labels"].get(k) == v for k, v in wanted.items())
                if matches and alert["status"] == status:
                    return receiver, alert
            time.sleep(0.2)
        seen = [(r, a["labels"], a["status"]) for r, a in self.alerts(since)]
        raise AssertionError(
            f"no {status} {alertname} {labels or ''} within {timeout}s; received {seen}\n"
            f"{describe()}"
        )


class Alertmanager(Daemon):
    """The real Alertmanager, configured from the committed example."""

    def __init__(self, base: Path) -> None:
        super().__init__("alertmanager", base)

    def start_with(self, example: Path, webhook: WebhookReceiver) -> None:
        config = yaml.safe_load(example.read_text(encoding="utf-8"))
        for receiver in config["receivers"]:
            for hook in receiver.get("webhook_configs", []):
                hook["url"] = webhook.url(receiver["name"])
        config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1h")
        path = self.dir / "alertmanager.yml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.start(
            [
                ALERTMANAGER,
                f"--config.file={path}",
                f"--storage.path={self.dir / 'data'}",
                f"--web.listen-address={self.address}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            "/-/ready",
        )


class Prometheus(Daemon):
    """The real Prometheus: 1 s scrapes and rule evaluations, its own TSDB directory."""

    def __init__(self, base: Path) -> None:
        super().__init__("prometheus", base)

    def start_with(
        self, rules: Path, jobs: dict[str, list[str]], alertmanager: Alertmanager
    ) -> None:
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "900ms",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(rules)],
            "alerting": {
                "alertmanagers": [{"static_configs": [{"targets": [alertmanager.address]}]}]
            },
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": targets}]}
                for job, targets in jobs.items()
            ],
        }
        path = self.dir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.start(
            [
                PROMETHEUS,
                f"--config.file={path}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address={self.address}",
                "--rules.alert.resend-delay=1s",
                "--log.level=warn",
            ],
            "/-/ready",
        )

    def query(self, expr: str) -> list[dict]:
        url = f"http://{self.address}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        body = json.loads(http_get(url))
        assert body["status"] == "success", body
        return body["data"]["result"]

    def active(self) -> list[dict]:
        """Alerts pending or firing now."""
        return json.loads(http_get(f"http://{self.address}/api/v1/alerts"))["data"]["alerts"]

    def firing(self) -> list[dict]:
        return [a for a in self.active() if a["state"] == "firing"]

    def wait_until(self, expr: str, timeout: float) -> list[dict]:
        """Poll ``expr`` until it returns at least one series."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.5)


class NodeExporter(Daemon):
    """node_exporter with only the textfile collector: how the backup job reports its age."""

    def __init__(self, base: Path) -> None:
        super().__init__("node_exporter", base)
        self.textfile_dir = self.dir / "textfile"
        self.textfile_dir.mkdir(exist_ok=True)

    def start_textfile_only(self) -> None:
        self.start(
            [
                NODE_EXPORTER,
                f"--web.listen-address={self.address}",
                "--collector.disable-defaults",
                "--collector.textfile",
                f"--collector.textfile.directory={self.textfile_dir}",
                "--log.level=warn",
            ],
            "/metrics",
        )

    def write(self, name: str, text: str) -> None:
        """Atomically, as node_exporter's documentation asks of textfile writers."""
        tmp = self.textfile_dir / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.rename(self.textfile_dir / name)
