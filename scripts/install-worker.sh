#!/usr/bin/env bash
# The reference worker's Python environment in worker/.venv (Python 3.11+; PyTorch and diffusers from PyPI, a
# few GB the first time; no model weights). Used by the quickstart and by the test install. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "the worker needs Python 3.11 or newer")'
if [ ! -x worker/.venv/bin/python ]; then
  python3 -m venv worker/.venv
fi
worker/.venv/bin/python -m pip install -q --disable-pip-version-check -r worker/requirements-test.txt
worker/.venv/bin/python -c 'import torch, diffusers, transformers; print("worker environment: torch", torch.__version__, "diffusers", diffusers.__version__, "transformers", transformers.__version__)'
