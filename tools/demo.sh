#!/usr/bin/env bash
# make demo: moto + the OpenRouter emulator on free loopback ports, the real provision binary
# under `cargo lambda watch` (the Lambda Runtime API), the sample events sent with
# `cargo lambda invoke`, and a summary of what was created. Never prints a plaintext key.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/orkv-target}"
export PATH="$root/.venv/bin:$PATH"
run=$(mktemp -d "${TMPDIR:-/tmp}/orkv-demo.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$run"
}
trap cleanup EXIT

moto_port=$(python3 tools/free-port.py)
emu_port=$(python3 tools/free-port.py)
invoke_port=$(python3 tools/free-port.py)
rotate_port=$(python3 tools/free-port.py)
sweep_port=$(python3 tools/free-port.py)
mgmt_key="sk-or-v1-demo-management-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"

echo "==> moto server on 127.0.0.1:$moto_port"
moto_server -H 127.0.0.1 -p "$moto_port" >"$run/moto.log" 2>&1 & pids+=($!)
echo "==> OpenRouter emulator on 127.0.0.1:$emu_port"
"$CARGO_TARGET_DIR/debug/openrouter-emulator" --port "$emu_port" --management-key "$mgmt_key" >"$run/emulator.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$moto_port/moto-api/" >/dev/null 2>&1 && curl -fs "http://127.0.0.1:$emu_port/_emulator/calls" >/dev/null 2>&1 && break
  sleep 0.1
done

# The functions reach moto through the AWS behaviour layer (docs/aws-fidelity.md).
"$CARGO_TARGET_DIR/debug/strict-proxy" "http://127.0.0.1:$moto_port" >"$run/proxy.url" 2>"$run/proxy.log" & pids+=($!)
for _ in $(seq 100); do [ -s "$run/proxy.url" ] && break; sleep 0.1; done
proxy_url=$(head -1 "$run/proxy.url")
echo "==> AWS behaviour layer on $proxy_url"
export AWS_ENDPOINT_URL="$proxy_url" AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1
# The management key lives in Secrets Manager, as in production.
python3 - "$moto_port" "$mgmt_key" <<'PY'
import json, sys, urllib.request
port, key = sys.argv[1], sys.argv[2]
req = urllib.request.Request(f"http://127.0.0.1:{port}/", method="POST",
    data=json.dumps({"Name": "openrouter/management-key", "SecretString": json.dumps({"management_key": key})}).encode(),
    headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "secretsmanager.CreateSecret",
             "Authorization": "AWS4-HMAC-SHA256 Credential=demo/20260101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=x"})
urllib.request.urlopen(req).read()
PY
# Result events: a bus whose rule delivers every product event to a queue, read at the end.
python3 - "$moto_port" <<'PY'
import boto3, json, sys
kw = dict(endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1", aws_access_key_id="demo", aws_secret_access_key="demo")
eb, sqs = boto3.client("events", **kw), boto3.client("sqs", **kw)
eb.create_event_bus(Name="orkv-results")
q = sqs.create_queue(QueueName="orkv-results")["QueueUrl"]
arn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
eb.put_rule(Name="results", EventBusName="orkv-results", EventPattern=json.dumps({"source": ["orkv.key-vending"]}))
eb.put_targets(Rule="results", EventBusName="orkv-results", Targets=[{"Id": "queue", "Arn": arn}])
PY
export ORKV_EVENT_BUS=orkv-results
export OPENROUTER_BASE_URL="http://127.0.0.1:$emu_port/api/v1"
export OPENROUTER_MANAGEMENT_KEY_SECRET_ID=openrouter/management-key
export ORKV_POLICY='{"workspaces":[{"workspace":"checkout","max_limit":100},{"workspace":"search","max_limit":20}],"min_ttl_seconds":3600,"max_ttl_seconds":7776000}'

echo "==> cargo lambda watch (Runtime API on 127.0.0.1:$invoke_port)"
export ORKV_RETIRE_GRACE_SECONDS=8
export ORKV_LOCAL_ROTATION_INVOKE_URL="http://127.0.0.1:$rotate_port/2015-03-31/functions/rotate/invocations"
cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$invoke_port" --package provision --features local-rotation >"$run/watch.log" 2>&1 & pids+=($!)
cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$rotate_port" --package rotate --features local-rotation >"$run/watch-rotate.log" 2>&1 & pids+=($!)
cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$sweep_port" --package sweep --features local-rotation >"$run/watch-sweep.log" 2>&1 & pids+=($!)

# The pipeline sample carries an explicit expiry: move it to two months from today.
python3 - "$root/events/pipeline-provision.json" "$run/pipeline.json" <<'PY'
import datetime, json, sys
event = json.load(open(sys.argv[1]))
event["expires_at"] = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
json.dump(event, open(sys.argv[2], "w"))
PY

invoke() {
  local file=$1 out=$2 fn=${3:-provision} port=${4:-$invoke_port}
  for _ in $(seq 600); do
    if cargo lambda invoke "$fn" --invoke-address 127.0.0.1 --invoke-port "$port" --data-file "$file" --output-format json >"$out" 2>"$out.err"; then
      return 0
    fi
    if grep -q "errorType" "$out.err" "$out" 2>/dev/null; then return 1; fi
    sleep 0.5   # the function is still compiling or starting under cargo lambda watch
  done
  echo "the function did not answer; see $run/watch.log" >&2
  cat "$run/watch.log" >&2
  return 1
}

echo "==> a consumer reads every managed secret without a stage, as applications do, throughout"
python3 tools/demo_consumer.py "$proxy_url" "$emu_port" "$run/consumer.txt" >"$run/consumer.log" 2>&1 & pids+=($!)

echo "==> invoking: events/eventbridge-key-requested.json (EventBridge)"
invoke "$root/events/eventbridge-key-requested.json" "$run/r1.json"
echo "==> invoking: events/pipeline-provision.json (deploy pipeline)"
invoke "$run/pipeline.json" "$run/r2.json"
echo "==> invoking the EventBridge event again (a duplicate delivery)"
invoke "$root/events/eventbridge-key-requested.json" "$run/r3.json"

python3 - "$run" "$emu_port" <<'PY'
import json, sys, urllib.request
run, port = sys.argv[1], sys.argv[2]
print()
print(f"{'status':10} {'secret':32} {'key hash':18} {'cap':22} {'expires_at':21} arn")
for name in ("r1", "r2", "r3"):
    r = json.load(open(f"{run}/{name}.json"))
    cap = f"{r['limit']} USD/{r['limit_reset'] or 'total'}"
    print(f"{r['status']:10} {r['secret_name']:32} {r['key_hash'][:16]}.. {cap:22} {r['expires_at']:21} {r['secret_arn']}")
state = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/_emulator/state"))
live = [k for k in state["keys"] if not k["disabled"] and not k["expired"]]
calls = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/_emulator/calls"))
print()
print(f"live OpenRouter keys: {len(live)} (one per secret; the duplicate created nothing)")
for k in live:
    print(f"  {k['name']}  hash {k['hash'][:16]}..  limit {k['limit']}  expires {k['expires_at']}")
print(f"OpenRouter calls: {calls['calls']}")
PY

echo
echo "==> rotation: a key that is due one second after it is minted"
echo '{"workspace": "checkout", "key_name": "demo-rotation", "limit": 5, "ttl_seconds": 3600, "rotate_before_seconds": 3599, "idempotency_id": "demo-rotation-1"}' >"$run/short.json"
invoke "$run/short.json" "$run/s1.json"
sleep 2
echo '{"execution_id": "demo-sweep-1"}' >"$run/sweep1.json"
invoke "$run/sweep1.json" "$run/w1.json" sweep "$sweep_port"
python3 tools/demo_rotation.py "$run" "$moto_port" "$emu_port" "$mgmt_key" after-rotation
echo "==> the same request with rotate_before_seconds 60: updated in place, no new key"
echo '{"workspace": "checkout", "key_name": "demo-rotation", "limit": 5, "ttl_seconds": 3600, "rotate_before_seconds": 60, "idempotency_id": "demo-rotation-2"}' >"$run/short2.json"
invoke "$run/short2.json" "$run/s2.json"
echo "==> waiting out the 8 s grace period, then the next sweep"
sleep 9
echo '{"execution_id": "demo-sweep-2"}' >"$run/sweep2.json"
invoke "$run/sweep2.json" "$run/w2.json" sweep "$sweep_port"
python3 tools/demo_rotation.py "$run" "$moto_port" "$emu_port" "$mgmt_key" after-grace
echo
echo "==> tenants: two teams, each invoking its own alias of the provision function"
# cargo lambda watch hands every invocation the ARN "function-arn"; this Runtime API hands the
# function the qualified ARN of the alias invoked, as Lambda does, which is how a tenant is known.
tenant_policy='{"tenants":{"checkout":{"workspaces":[{"workspace":"checkout","max_limit":100}],"event_sources":["com.example.checkout"]},"search":{"workspaces":[{"workspace":"search","max_limit":20}],"event_sources":["com.example.search"]}}}'
ORKV_POLICY="$tenant_policy" "$CARGO_TARGET_DIR/debug/runtime-api" "$CARGO_TARGET_DIR/debug/provision" >"$run/tenant-api.txt" 2>"$run/tenant-api.log" & pids+=($!)
for _ in $(seq 100); do [ -s "$run/tenant-api.txt" ] && break; sleep 0.1; done
tenant_url=$(head -1 "$run/tenant-api.txt")
tenant_invoke() {
  curl -fsS -X POST "$tenant_url/2015-03-31/functions/provision:$1/invocations" --data-binary "$2" -o "$run/$3.json"
}
tenant_invoke checkout '{"workspace": "checkout", "key_name": "payments-api", "limit": 50, "limit_reset": "monthly"}' t1
tenant_invoke search '{"workspace": "search", "key_name": "ranker", "limit": 10, "limit_reset": "monthly"}' t2
tenant_invoke search "{\"action\": \"revoke\", \"secret_name\": \"openrouter/checkout/checkout/payments-api\", \"delete_secret\": true}" t3
tenant_invoke search '{"workspace": "checkout", "key_name": "ranker", "limit": 100}' t4
python3 - "$run" <<'PY'
import json, sys
run = sys.argv[1]
rows = [("checkout", "vend payments-api in checkout", "t1"), ("search", "vend ranker in search", "t2"),
        ("search", "revoke checkout's payments-api", "t3"), ("search", "vend into checkout at 100 USD", "t4")]
print(f"{'alias':9} {'request':34} outcome")
ok = True
for alias, what, name in rows:
    r = json.load(open(f"{run}/{name}.json"))
    outcome = r.get("status") or f"refused: {r.get('errorType')}: {r.get('errorMessage')}"
    print(f"{alias:9} {what:34} {outcome}")
    expect_ok = name in ("t1", "t2")
    ok &= (r.get("status") == "created") if expect_ok else (r.get("errorType") == "TenantScopeViolation")
if not ok:
    sys.exit("tenant demo: a team reached outside its scope, or could not vend its own key")
print("each team vended its own key; the other team's reach was refused and changed nothing")
PY
echo
echo "==> result events, as a subscriber reads them (the bus's rule delivers them to a queue)"
python3 - "$moto_port" <<'PY'
import boto3, json, sys
kw = dict(endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1", aws_access_key_id="demo", aws_secret_access_key="demo")
sqs = boto3.client("sqs", **kw)
q = sqs.get_queue_url(QueueName="orkv-results")["QueueUrl"]
events = []
while True:
    got = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10).get("Messages", [])
    if not got:
        break
    for m in got:
        events.append(json.loads(m["Body"]))
        sqs.delete_message(QueueUrl=q, ReceiptHandle=m["ReceiptHandle"])
print(f"{'detail-type':34} {'outcome':17} {'repeat':6} {'secret':40} key hash")
for e in events:
    d = e["detail"]
    print(f"{e['detail-type']:34} {d['outcome']:17} {str(d['repeat']):6} {d['secret_name'] or '-':40} {(d['key_hash'] or '-')[:16]}")
text = json.dumps(events)
if "sk-or-" in text:
    sys.exit("a result event holds a key")
if not any(e["detail-type"] == "OpenRouter Key Rotated" for e in events):
    sys.exit("the sweep's rotation was not announced")
print(f"{len(events)} events, none holding a key")
PY
sleep 1
read -r reads failures <"$run/consumer.txt"
echo "consumer (GetSecretValue without a stage, then GET /key): $reads reads, $failures failures"
echo
echo "(plaintext keys were written to Secrets Manager only; nothing above contains one)"
if [ "$failures" != 0 ]; then
  echo "a consumer met a current record whose key did not work" >&2
  exit 1
fi
