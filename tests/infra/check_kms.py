"""A customer key (kms_key_arn) needs statements in its own key policy, which the module renders
(the output customer_key_policy_statements, known from a plan):
- it names the services that use the key outside the roles: CloudWatch
  Logs for this deployment's log groups only (encryption-context condition), and CloudWatch and
  EventBridge (the alarm topic, the dead-letter queue) without a condition (AWS's statement).

Run on the outputs of the apply without a key, and on the planned outputs of the apply with one
(tests/infra/customer_key.py: that apply, and the roles' own KMS statements).

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
