#!/usr/bin/env bash
# Installs what the test suite needs beyond npm packages. Safe to run again; installs nothing twice.
#  - Debian's redis-server: the tests start their own on free loopback ports.
#  - worker/.venv: the reference GPU worker's Python environment (CPU is enough: its tests build tiny random
#    pipelines in process and download no model).
#  - test/integration/clients/python/.venv-*: Runware's published Python clients, one environment each (both
#    install a module named `runware`), for the tests that point them at clipgate.
#  - test/reliability/.venv: schemathesis, which the reliability suite runs against the committed OpenAPI document.
#  - test/docker/.venv: hadolint, which lints the Dockerfiles.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Debian's redis-server (every test that shares state), nginx (docker/nginx.conf, run in front of two
# gateways), docker-compose (`config` checks docker/compose.yaml; no Docker engine needed) and prometheus
# (docker/prometheus.yml scraping two gateways, the dashboard's queries). RUNLEVEL=1: the packages' services
# are not started; the tests start their own on free loopback ports.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq "${missing[@]}" >/dev/null
fi
redis-server --version
nginx -v
docker-compose version --short
prometheus --version 2>&1 | head -n 1

scripts/install-worker.sh

clients=test/integration/clients/python
for client in runware runware-sdk; do
  if [ ! -x "$clients/.venv-$client/bin/python" ]; then
    python3 -m venv "$clients/.venv-$client"
  fi
  "$clients/.venv-$client/bin/python" -m pip install -q --disable-pip-version-check -r "$clients/requirements-$client.txt"
done
echo "Runware Python clients: $("$clients/.venv-runware/bin/python" -m pip show runware | sed -n 's/^Version: //p') (runware), $("$clients/.venv-runware-sdk/bin/python" -m pip show runware-sdk | sed -n 's/^Version: //p') (runware-sdk)"

if [ ! -x test/reliability/.venv/bin/python ]; then
  python3 -m venv test/reliability/.venv
fi
test/reliability/.venv/bin/python -m pip install -q --disable-pip-version-check -r test/reliability/schemathesis/requirements.txt
test/reliability/.venv/bin/schemathesis --version

# hadolint, for test/docker: there is no Docker engine to build the images, so the Dockerfiles are linted and
# their runtime stage is assembled by hand.
if [ ! -x test/docker/.venv/bin/python ]; then
  python3 -m venv test/docker/.venv
fi
test/docker/.venv/bin/python -m pip install -q --disable-pip-version-check -r test/docker/requirements.txt
test/docker/.venv/bin/hadolint --version
