#!/usr/bin/env bash
# Installs what the test suite needs beyond npm packages: Debian's redis-server, which the tests start on
# free loopback ports themselves. Safe to run again; installs nothing that is already there.
set -euo pipefail

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v redis-server >/dev/null 2>&1; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
redis-server --version
