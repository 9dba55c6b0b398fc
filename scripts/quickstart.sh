#!/usr/bin/env bash
# One machine, one command: the reference worker in tiny mode (random tiny SD 1.5 and SDXL pipelines built in
# process — its images are noise, nothing is downloaded but its Python packages the first time) and the
# gateway on its embedded defaults in front of it (in-process caches; Redis when REDIS_URL is set).
# Ctrl-C (or SIGTERM) stops both: the gateway drains first, then the worker.
#   npm ci && npm run quickstart
# PORT (8080) is the gateway's, WORKER_PORT (9000) the worker's; with WORKER_URLS set, no tiny worker is
# started and the gateway uses those workers instead.
set -euo pipefail
cd "$(dirname "$0")/.."

export PORT="${PORT:-8080}"
worker_port="${WORKER_PORT:-9000}"
worker_pid=""
gateway_pid=""

stop() {
  trap - INT TERM EXIT
  if [ -n "$gateway_pid" ]; then kill -TERM "$gateway_pid" 2>/dev/null || true; wait "$gateway_pid" 2>/dev/null || true; fi
  if [ -n "$worker_pid" ]; then kill -TERM "$worker_pid" 2>/dev/null || true; wait "$worker_pid" 2>/dev/null || true; fi
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

if [ -z "${WORKER_URLS:-}" ]; then
  if ! worker/.venv/bin/python -c 'import torch, diffusers' >/dev/null 2>&1; then
    echo "quickstart: installing the reference worker's Python environment in worker/.venv (once; PyTorch is large)"
    scripts/install-worker.sh
  fi
  echo "quickstart: starting the reference worker in tiny mode on 127.0.0.1:${worker_port} (its images are noise)"
  (cd worker && WORKER_TINY=1 WORKER_HOST=127.0.0.1 WORKER_PORT="$worker_port" exec .venv/bin/python -m clipgate_worker) &
  worker_pid=$!
  ready=""
  for _ in $(seq 1 240); do
    if ! kill -0 "$worker_pid" 2>/dev/null; then echo "quickstart: the worker exited before it was ready" >&2; exit 1; fi
    if node -e "fetch('http://127.0.0.1:${worker_port}/v1/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"; then ready=1; break; fi
    sleep 0.5
  done
  if [ -z "$ready" ]; then echo "quickstart: the worker did not answer its health check within 120 s" >&2; exit 1; fi
  export WORKER_URLS="http://127.0.0.1:${worker_port}"
fi

npm run -s build
echo "quickstart: starting the gateway on port ${PORT} with WORKER_URLS=${WORKER_URLS}"
# package.json's start command, node flags and all (one place says how the gateway runs); split on spaces.
start_command=$(node -p "require('./package.json').scripts.start")
$start_command &
gateway_pid=$!
wait "$gateway_pid"
