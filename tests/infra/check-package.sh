#!/usr/bin/env bash
# The release packages contain no local stand-in: each packaged bootstrap refuses to start when
# given ORKV_LOCAL_ROTATION_INVOKE_URL (naming the variable), accepts the same environment
# without it, and holds none of the local driver's strings. The debug build with the
# local-rotation feature is checked for those strings too, so the search is known to work.
set -euo pipefail
cd "$(dirname "$0")/../.."
package_dir="${1:?usage: check-package.sh PACKAGE_DIR}"
debug_dir="${CARGO_TARGET_DIR:-$HOME/.cache/orkv-target}/debug"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
marker="orkv-local-rotation-driver"
fail() { echo "package check FAILED: $*" >&2; exit 1; }
env_vars=(OPENROUTER_MANAGEMENT_KEY=k 'ORKV_POLICY={"workspaces":[{"workspace":"w","max_limit":1}]}')
for f in provision rotate sweep; do
  zip="$package_dir/$f/bootstrap.zip"
  [ -f "$zip" ] || fail "$zip is missing (run make package)"
  mkdir -p "$work/$f"
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$zip" "$work/$f"
  bin="$work/$f/bootstrap"
  chmod +x "$bin"
  if grep -qa "$marker" "$bin"; then fail "$f: the packaged binary contains the local rotation driver"; fi
  grep -qa "$marker" "$debug_dir/$f" || fail "$f: the local build lacks the driver, so the search proves nothing"
  env -i "${env_vars[@]}" "$bin" --check-config >/dev/null 2>&1 || fail "$f: the packaged binary refuses a valid environment"
  if out=$(env -i "${env_vars[@]}" ORKV_LOCAL_ROTATION_INVOKE_URL=http://127.0.0.1:9/x "$bin" --check-config 2>&1); then
    fail "$f: the packaged binary accepted ORKV_LOCAL_ROTATION_INVOKE_URL"
  fi
  grep -q "ORKV_LOCAL_ROTATION_INVOKE_URL" <<<"$out" || fail "$f: the refusal does not name the variable: $out"
  echo "package check: $f: no local stand-in; refuses ORKV_LOCAL_ROTATION_INVOKE_URL"
done
echo "package check passed"
