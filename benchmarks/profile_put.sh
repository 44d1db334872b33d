#!/usr/bin/env bash
# Profile a fresh cairn member under `cairn bench`'s N=128 put load with py-spy.
#
# Why: cairn is one Python process, so its throughput ceiling is whatever holds the GIL. The
# default records only samples where a thread holds the GIL (--gil), which is the question
# that matters; pass other py-spy flags after the output path (e.g. --native, or --idle).
#
#   .venv/bin/pip install py-spy
#   benchmarks/profile_put.sh /tmp/cairn-profile            # collapsed stacks in profile.txt
#   benchmarks/profile_put.sh /tmp/cairn-profile --native   # native frames too (pauses the server)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: benchmarks/profile_put.sh OUTDIR [py-spy flags...]}
shift
extra=("$@")
[ ${#extra[@]} -eq 0 ] && extra=(--gil --nonblocking)
[ -x .venv/bin/py-spy ] || { echo "install py-spy first: .venv/bin/pip install py-spy" >&2; exit 2; }
mkdir -p "$out"
free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
client=$(free_port); peer=$(free_port)
data=$(mktemp -d /tmp/cairn-profile-data.XXXXXX)
.venv/bin/python -m cairn serve --name prof --data-dir "$data/m" \
  --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
  --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
  --initial-cluster "prof=http://127.0.0.1:$peer" --log-level warn >"$out/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$data"' EXIT
sleep 2
.venv/bin/py-spy record --pid "$server" --duration 20 --rate 200 --format raw \
  --output "$out/profile.txt" "${extra[@]}" >"$out/py-spy.log" 2>&1 &
spy=$!
sleep 1
.venv/bin/cairn bench --endpoint "127.0.0.1:$client" --endpoint-pid "$server" --ops put \
  --concurrency 128 --requests 100000 --duration 21 --warmup 500
wait "$spy" || { cat "$out/py-spy.log" >&2; exit 1; }
echo "collapsed stacks in $out/profile.txt; top self time:"
awk '{n=$NF; $NF=""; k=split($0,f,";"); self[f[k]]+=n; t+=n} END {for (s in self) printf "%5.1f%% %s\n", 100*self[s]/t, s}' \
  "$out/profile.txt" | sort -rn | head -25
