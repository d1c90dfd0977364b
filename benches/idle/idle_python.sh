#!/usr/bin/env bash
# Node RSS per idle connection with an independent client (Python
# `websockets` from PyPI, in a venv under target/). Usage: idle_python.sh [N] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/py-idle
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'websockets>=12,<16'
fi
[ -x target/release/wsnode ] || cargo build --release -p server --bin wsnode
exec "$venv/bin/python" benches/idle/idle_python.py "$@"
