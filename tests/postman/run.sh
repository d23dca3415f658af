#!/usr/bin/env bash
# Run the Postman collection with newman (`make newman`).
#
#   BASE_URL=http://arch.homework bash tests/postman/run.sh   # against a running deployment
#   bash tests/postman/run.sh                                  # starts a throwaway server itself
#   bash tests/postman/run.sh --bail                           # extra arguments go to `newman run`
#
# Environment: BASE_URL (skip starting a server), PYTHON (default .venv/bin/python),
# READY_TIMEOUT seconds to wait for /health/ready (default 30), NEWMAN_DELAY_MS pacing of the
# polling retries (default 50), POLL_MAX_TRIES tries per asynchronous step (default: the collection's 50).
set -euo pipefail
cd "$(dirname "$0")/../.."

COLLECTION=tests/postman/eventcollab.postman_collection.json
NEWMAN=node_modules/.bin/newman
PYTHON=${PYTHON:-.venv/bin/python}
READY_TIMEOUT=${READY_TIMEOUT:-30}
NEWMAN_DELAY_MS=${NEWMAN_DELAY_MS:-50}

log() { printf 'run.sh: %s\n' "$*" >&2; }

# 1. newman, pinned by package-lock.json, installed locally on first use
if [ ! -x "$NEWMAN" ]; then
  command -v npm >/dev/null || { log "npm not found: install Node.js >= 16 to run the Postman collection"; exit 1; }
  log "installing newman (npm ci)"
  npm ci --no-audit --no-fund
fi

# 2. the system under test: BASE_URL, or a fresh server on a free port with an empty data dir
server_pid=""
data_dir=""
server_log=""

stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do # up to 10 s for a clean shutdown, then kill -9
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
  if [ -n "$data_dir" ]; then rm -rf "$data_dir"; fi
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

server_log_tail() {
  if [ -n "$server_log" ] && [ -f "$server_log" ]; then
    log "last lines of the server log ($server_log):"
    tail -n "${1:-80}" "$server_log" >&2 || true
  fi
}

is_ready() {
  if command -v curl >/dev/null; then
    curl -fsS -o /dev/null --max-time 1 "$1/health/ready" 2>/dev/null
  else
    "$PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/health/ready", timeout=1)' "$1" 2>/dev/null
  fi
}

if [ -n "${BASE_URL:-}" ]; then
  base_url=${BASE_URL%/}
  log "running against BASE_URL=$base_url"
else
  [ -x "$PYTHON" ] || { log "$PYTHON not found: run 'make install' first (or set PYTHON or BASE_URL)"; exit 1; }
  port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  data_dir=$(mktemp -d "${TMPDIR:-/tmp}/eventcollab-newman.XXXXXX")
  server_log="$data_dir/server.log"
  base_url="http://127.0.0.1:$port"
  log "starting the server on $base_url (data dir $data_dir)"
  ACCESS_LOG=${ACCESS_LOG:-1} "$PYTHON" -m app --host 127.0.0.1 --port "$port" --data-dir "$data_dir" \
    >"$server_log" 2>&1 &
  server_pid=$!
  deadline=$((SECONDS + READY_TIMEOUT))
  until is_ready "$base_url"; do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      log "the server exited before it was ready"
      server_log_tail
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "the server was not ready within ${READY_TIMEOUT}s"
      server_log_tail
      exit 1
    fi
    sleep 0.1
  done
  log "server ready"
fi

# 3. the collection; --verbose makes the cli reporter print every request and response body
args=(run "$COLLECTION"
  --env-var "baseUrl=$base_url"
  --reporters cli
  --verbose
  --delay-request "$NEWMAN_DELAY_MS"
  --timeout-request 15000
  --timeout 300000)
if [ -n "${POLL_MAX_TRIES:-}" ]; then args+=(--env-var "pollMaxTries=$POLL_MAX_TRIES"); fi

status=0
"$NEWMAN" "${args[@]}" "$@" || status=$?
if [ "$status" -ne 0 ]; then
  log "newman failed (exit $status)"
  server_log_tail 100
fi
exit "$status"
