#!/usr/bin/env bash
# `make profile`: where one order's CPU goes. The bench runs on its own server (64 clients, 15 s of
# orders); py-spy records that server's main thread during the orders; the samples are sorted by layer
# (app/ops/bench/hops.py) and shared out over the bench's CPU per order. py-spy slows what it watches,
# so the figures beside the table are from the same run: read the shares, not the rate.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/eventcollab-profile}
secs=${SECONDS_OF_ORDERS:-15}
mkdir -p "$out"
PYTHONUNBUFFERED=1 .venv/bin/python -m app bench --duration "$secs" --bare-duration 3 --read-duration 0 \
  --json "$out/bench.json" | tee "$out/bench.txt" &
bench=$!
# wait (bounded) for the order phase, then find the bench's own server: the python -m app it started
for _ in $(seq 600); do grep -q "^orders" "$out/bench.txt" 2>/dev/null && break; sleep 0.1; done
pid=$(pgrep -n -f "app --host 127.0.0.1 --port" || true)
if [ -z "$pid" ]; then echo "profile: the bench's server was not found" >&2; kill $bench; exit 1; fi
.venv/bin/py-spy record -p "$pid" -d $((secs - 3)) -r 200 --format raw -o "$out/profile.raw" >/dev/null 2>&1
wait $bench
cpu=$(.venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['cpu_ms_per_order'] or '')" "$out/bench.json")
echo
echo "CPU per order in this run (py-spy attached): ${cpu} ms; samples in $out/profile.raw"
.venv/bin/python -m app.ops.bench.hops "$out/profile.raw" ${cpu:+--cpu-ms-per-order "$cpu"}
