#!/usr/bin/env bash
# Creates .venv-checkov with the pinned checkov from PyPI (its own virtualenv: its dependencies
# would otherwise fight moto's). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv-checkov/.requirements
if [ -x .venv-checkov/bin/checkov ] && cmp -s tools/requirements-checkov.txt "$stamp"; then
  exit 0
fi
python3 -m venv .venv-checkov
.venv-checkov/bin/pip install --quiet --disable-pip-version-check -r tools/requirements-checkov.txt
cp tools/requirements-checkov.txt "$stamp"
