"""With a customer key (kms_key_arn): what the module renders for it, read from a plan of the
example with the key set (terraform show -json) and from the applied outputs.

- The scheduler role may decrypt the schedule with the key (EventBridge Scheduler user guide,
  "Encryption at rest": the execution role decrypts the payload before each invocation), or the
  sweep never runs and keys expire.
- Every other KMS statement of the roles goes through a service (kms:ViaService).
- customer_key_policy_statements names the services that use the key outside the roles: CloudWatch
  Logs for this deployment's log groups only (encryption-context condition), and CloudWatch and
  EventBridge (the alarm topic, the dead-letter queue) without a condition (AWS's statement).

Usage: check_kms.py PLAN_JSON OUTPUTS_JSON KEY_ARN"""
import json
import sys

plan = json.load(open(sys.argv[1]))
outputs = json.load(open(sys.argv[2]))
key = sys.argv[3]
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)


def listify(v):
    return v if isinstance(v, list) else [v]


docs = plan["planned_values"]["outputs"]["policy_documents"]["value"]
for role, text in sorted(docs.items()):
    doc = json.loads(text)
    kms = [st for st in doc["Statement"] if any(a.startswith("kms:") for a in listify(st["Action"]))]
    check(kms, f"{role}: no KMS statement with a customer key")
    for st in kms:
        check(listify(st["Resource"]) == [key], f"{role}: {st.get('Sid')} on {st['Resource']}")
        if st.get("Sid") == "DecryptTheSchedule":
            check(role == "scheduler" and listify(st["Action"]) == ["kms:Decrypt"], f"{role}: DecryptTheSchedule")
        else:
            check("kms:ViaService" in json.dumps(st.get("Condition", {})), f"{role}: {st.get('Sid')} without kms:ViaService")
    print(f"    {role}: {len(kms)} KMS statements on the key")
check(any(st.get("Sid") == "DecryptTheSchedule" for st in json.loads(docs["scheduler"])["Statement"]),
      "scheduler: cannot decrypt the schedule (the sweep would never run)")

stmts = {st["Sid"]: st for st in json.loads(outputs["customer_key_policy_statements"]["value"])["Statement"]}
logs = stmts.get("LogsEncryptTheFunctionLogs", {})
check(logs.get("Principal", {}).get("Service", "").startswith("logs."), "logs principal")
ctx = logs.get("Condition", {}).get("ArnLike", {}).get("kms:EncryptionContext:aws:logs:arn", "")
check(ctx.endswith(":log-group:/aws/lambda/orkv-*"), f"logs: encryption context {ctx!r}")
pub = stmts.get("AlarmsRulesAndDeadLetters", {})
check(set(listify(pub.get("Principal", {}).get("Service", []))) == {"cloudwatch.amazonaws.com", "events.amazonaws.com"},
      "alarm topic and dead letters: principals")
check("Condition" not in pub, "alarm topic and dead letters: a condition AWS's statement does not have")
print(f"    customer_key_policy_statements: {sorted(stmts)}")
for f in failures:
    print(f"kms check: {f}")
sys.exit(1 if failures else 0)
