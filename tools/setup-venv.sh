#!/usr/bin/env bash
# Creates .venv with the pinned local stand-ins (moto server, cargo-lambda) from PyPI.
# Idempotent: does nothing when the venv already matches tools/requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.requirements
if [ -x .venv/bin/moto_server ] && [ -x .venv/bin/cargo-lambda ] && cmp -s tools/requirements.txt "$stamp"; then
  exit 0
fi
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt
cp tools/requirements.txt "$stamp"
echo "venv ready: $(.venv/bin/moto_server --version 2>/dev/null | head -1 || echo moto) / $(.venv/bin/cargo-lambda lambda --version 2>/dev/null || echo cargo-lambda)"
