"""A customer key (kms_key_arn) needs statements in its own key policy, which the module renders
(the output customer_key_policy_statements, read after apply):
- it names the services that use the key outside the roles: CloudWatch
  Logs for this deployment's log groups only (encryption-context condition), and CloudWatch and
  EventBridge (the alarm topic, the dead-letter queue) without a condition (AWS's statement).

The roles' own KMS statements (the scheduler's DecryptTheSchedule among them) are rendered only
with a key, and this test applies the example without one: an apply with a KMS key moto made did
not finish within 17 minutes here, and a plan defers the policy documents to apply.

Usage: check_kms.py OUTPUTS_JSON"""
import json
import sys

outputs = json.load(open(sys.argv[1]))
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)


def listify(v):
    return v if isinstance(v, list) else [v]


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
