"""The other half of the deployed-role oracle (tests/src/iam.rs): every Secrets Manager action a
role's rendered policy allows was made, and allowed, under that role somewhere in the suites
`make test` just ran; and no call was refused (the test that made it has failed already; this
lists them together).

The rest of each policy is used by AWS on the role's behalf, not by the functions' code, and is
checked by tests/infra/check_policies.py instead: logs (the Lambda runtime), sqs (the on-failure
destination), lambda:InvokeFunction (Secrets Manager invoking the rotation function, which
RotateSecret's caller must be allowed), kms (Secrets Manager and SQS with a customer key), xray,
and events:PutEvents (the result bus, whose calls the suites make on a bus of their own).

Usage: check_policy_use.py LOG_DIR SNAPSHOT"""
import glob
import json
import sys


def listify(v):
    return v if isinstance(v, list) else [v]


def main() -> int:
    log_dir, snapshot = sys.argv[1:3]
    files = glob.glob(f"{log_dir}/calls-*.jsonl")
    if not files:
        print(f"    no decisions in {log_dir}: run the suites first (make test clears and fills it)")
        return 1
    used, refused = set(), []
    for f in files:
        for line in open(f):
            d = json.loads(line)
            if d["allowed"]:
                used.add((d["role"], d["action"]))
            else:
                refused.append(d)
    policies = json.load(open(snapshot))
    failures = 0
    for role, doc in sorted(policies.items()):
        granted = {a for st in doc["Statement"] if st.get("Effect", "Allow") == "Allow"
                   for a in listify(st.get("Action", [])) if a.startswith("secretsmanager:")}
        unused = sorted(a for a in granted if (role, a) not in used)
        made = sorted(a for (r, a) in used if r == role)
        print(f"    {role}: {len(granted)} Secrets Manager actions granted, {len(made)} made by the suites, unused: {unused or 'none'}")
        if unused:
            failures += 1
    for d in refused:
        print(f"    refused: {d['role']} {d['action']} on {d['resource']} ({d['decision']}) in {d['test']}")
    print(f"    {len(files)} test processes, {len(used)} role/action pairs allowed, {len(refused)} calls refused")
    if failures:
        print("    an action no test makes is granted: remove it from infra/iam.tf, or add the test that needs it")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
