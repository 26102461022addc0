#!/usr/bin/env bash
# Creates the LocalStack virtualenv (Python 3.13: localstack-core 4.14 needs 3.12+) outside the
# checkout, keyed by tools/requirements-localstack.txt, and prints its python. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${ORKV_LOCALSTACK_VENV:-$HOME/.cache/orkv-localstack-venv}"
stamp="$cache/.requirements"
if [ -x "$cache/bin/python" ] && cmp -s tools/requirements-localstack.txt "$stamp"; then
  echo "$cache/bin/python"
  exit 0
fi
py=
for candidate in python3.13 python3.12; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
    py=$(command -v "$candidate"); break
  fi
done
if [ -z "$py" ] && command -v pyenv >/dev/null 2>&1; then
  for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.1[23]\.' | sort -rV); do
    py=$(PYENV_VERSION="$v" pyenv which python3 2>/dev/null) && break
  done
fi
[ -n "$py" ] || { echo "LocalStack needs Python 3.12 or 3.13 (python3.13 on PATH, or a pyenv version)" >&2; exit 1; }
rm -rf "$cache"
"$py" -m venv "$cache" >&2
"$cache/bin/pip" install --quiet --disable-pip-version-check -r tools/requirements-localstack.txt >&2
cp tools/requirements-localstack.txt "$stamp"
echo "$cache/bin/python"
