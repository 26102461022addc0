#!/usr/bin/env bash
# The second AWS (part of `make test`): LocalStack's community core in host mode (no Docker),
# pinned in tools/requirements-localstack.txt, as the Secrets Manager, EventBridge and SQS of the
# suites listed below, with the AWS behaviour layer and the deployed-role oracle still in front.
# Where LocalStack and moto disagree, a suite that passes on one fails on the other:
# docs/aws-fidelity.md ("A second AWS") lists what was found and what was done about it.
# Then on_localstack.rs: the production rotation path (RotateSecret invoking the packaged rotate
# binary through LocalStack's Lambda API) and a short chaos soak on it.
# Usage: tests/localstack/run.sh [cargo test filter args...]
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/orkv-target}"
py=$(tools/setup-localstack.sh)
run=$(mktemp -d "${TMPDIR:-/tmp}/orkv-localstack.XXXXXX")
port=$(python3 tools/free-port.py)
ls_pid=
cleanup() {
  [ -n "$ls_pid" ] && kill "$ls_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ -n "${ORKV_KEEP_RUN:-}" ]; then echo "kept $run"; else rm -rf "$run"; fi
}
trap cleanup EXIT
# launch.py is LocalStack's own entry point with one layer replaced: the execution of a Lambda
# function whose environment names a bridge (the rotate function of on_localstack.rs).
GATEWAY_LISTEN="127.0.0.1:$port" LOCALSTACK_HOST="127.0.0.1:$port" \
  SERVICES=secretsmanager,events,sqs,sts,kms,lambda DNS_ADDRESS=0 FILESYSTEM_ROOT="$run/root" \
  DISABLE_EVENTS=1 \
  "$py" tests/localstack/launch.py >"$run/localstack.log" 2>&1 &
ls_pid=$!
for _ in $(seq 120); do
  curl -fs "http://127.0.0.1:$port/_localstack/health" >/dev/null 2>&1 && break
  kill -0 "$ls_pid" 2>/dev/null || { tail -40 "$run/localstack.log"; echo "LocalStack exited" >&2; exit 1; }
  sleep 0.5
done
curl -fs "http://127.0.0.1:$port/_localstack/health" >/dev/null || { tail -40 "$run/localstack.log"; echo "LocalStack did not start" >&2; exit 1; }
echo "LocalStack $("$py" -c 'import importlib.metadata as m; print(m.version("localstack-core"))') on 127.0.0.1:$port"
export ORKV_MOTO_URL="http://127.0.0.1:$port" ORKV_AWS_ACCOUNT=000000000000
# The packaged binaries (`make package`: release, no local stand-in) run the production path.
arch_dir=x86_64-unknown-linux-gnu
[ "${ARCH:-x86_64}" = arm64 ] && arch_dir=aarch64-unknown-linux-gnu
export ORKV_RELEASE_BIN_DIR="${ORKV_RELEASE_BIN_DIR:-$CARGO_TARGET_DIR/$arch_dir/release}"
status=0
cargo test -p orkv-tests --no-fail-fast \
  ${ORKV_LOCALSTACK_TESTS:---test provision --test store --test lambda_binary} "$@" || status=$?
# One at a time: every test registers the one rotate function (the module's name, which the
# roles' lambda:InvokeFunction statements name) bridged to its own Runtime API.
if [ -z "${ORKV_LOCALSTACK_TESTS:-}" ]; then
  cargo test -p orkv-tests --no-fail-fast --test on_localstack -- --test-threads 1 || status=$?
fi
[ "$status" -eq 0 ] || { echo "LocalStack log: $run/localstack.log (ORKV_KEEP_RUN=1 keeps it)"; tail -30 "$run/localstack.log"; }
exit "$status"
