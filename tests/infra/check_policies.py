"""Reads the policy documents the module renders (terraform output -json policy_documents) and
asserts that each role allows exactly the actions its function's code makes, on the narrowest
resources, and nothing else. Usage: check_policies.py POLICIES_JSON"""
import json
import sys

SM = "secretsmanager:"
LOGS = {"logs:CreateLogStream", "logs:PutLogEvents"}
# The calls each function's code makes (shared/store method -> Secrets Manager action):
#   provision: create -> CreateSecret (+TagResource for its tags), get, put, move_stage, tag,
#              delete (revoke), cancel_rotation (revoke: CancelRotateSecret), untag, describe and
#              rotate (rotate-now and revoke actions),
#              and RotateSecret makes Secrets Manager invoke the rotate function as the caller.
#              The inventory action lists managed secrets (ListSecrets; names and tags only).
#   rotate:    describe, get, put, move_stage, tag, untag (the four steps); list_tag_key_page and
#              list_tagged_page (ListSecrets): a leak's finishSecret disables an adopted key in
#              grace only once no other managed secret holds it (ops/owned.rs held_elsewhere).
#   sweep:     list_tagged_page, describe, version_stages (ListSecretVersionIds), get, untag
#              (retire), tag (retire: the orkv:budget ledger, ops/budget.rs carry_retiring),
#              rotate (+ invoke). provision's rotate-now also lists version ids.
#   provision and rotate put result events (orkv-events: PutEvents on the result bus).
EXPECTED = {
    "provision": {
        *(SM + a for a in ["CancelRotateSecret", "CreateSecret", "DeleteSecret", "DescribeSecret", "GetSecretValue", "ListSecrets", "ListSecretVersionIds", "PutSecretValue",
                           "RotateSecret", "TagResource", "UntagResource", "UpdateSecretVersionStage"]),
        "lambda:InvokeFunction", "sqs:SendMessage", "events:PutEvents", *LOGS,
    },
    "rotate": {
        *(SM + a for a in ["DescribeSecret", "GetSecretValue", "ListSecrets", "PutSecretValue", "TagResource", "UntagResource",
                           "UpdateSecretVersionStage"]),
        "sqs:SendMessage", "events:PutEvents", *LOGS,
    },
    "sweep": {
        *(SM + a for a in ["ListSecrets", "DescribeSecret", "GetSecretValue", "ListSecretVersionIds", "RotateSecret", "TagResource",
                           "UntagResource"]),
        "lambda:InvokeFunction", "sqs:SendMessage", *LOGS,
    },
    "scheduler": {"lambda:InvokeFunction", "sqs:SendMessage"},
}
MANAGED_TAG = "orkv:managed-by"
MANAGED_VALUE = "openrouter-key-vending"

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)


def listify(v):
    return v if isinstance(v, list) else [v]


def main() -> int:
    docs = json.load(open(sys.argv[1]))
    check(set(docs) == set(EXPECTED), f"roles rendered: {sorted(docs)}")
    for role, text in docs.items():
        doc = json.loads(text)
        allowed, counted = set(), 0
        for st in doc["Statement"]:
            actions = listify(st.get("Action", []))
            resources = listify(st.get("Resource", []))
            check("NotAction" not in st and "NotResource" not in st, f"{role}: NotAction/NotResource in {st.get('Sid')}")
            if st.get("Effect", "Allow") != "Allow":
                continue
            counted += 1
            for a in actions:
                check("*" not in a, f"{role}: wildcard action {a}")
                allowed.add(a)
                if st.get("Sid") == "ReadSecretsToAdopt":
                    # Adoption reads only secrets under the prefix that are not managed yet.
                    check(role == "provision", f"{role}: adoption reads")
                    check(set(actions) <= {SM + "DescribeSecret", SM + "GetSecretValue"}, f"{role}: adoption allows {actions}")
                    cond = st.get("Condition", {}).get("Null", {})
                    check(cond.get(f"secretsmanager:ResourceTag/{MANAGED_TAG}") == "true", f"{role}: adoption reads without the Null condition")
                    check(all(":secret:" in r and r.endswith("/*") for r in resources), f"{role}: adoption reads on {resources}")
                    continue
                if a.startswith(SM) and a not in (SM + "ListSecrets", SM + "GetSecretValue", SM + "CreateSecret", SM + "TagResource"):
                    # Every other secret action: managed prefix only, and only secrets tagged managed.
                    cond = st.get("Condition", {}).get("StringEquals", {})
                    check(cond.get(f"secretsmanager:ResourceTag/{MANAGED_TAG}") == MANAGED_VALUE,
                          f"{role}: {a} without the managed-by tag condition")
                    check(all(":secret:" in r and r.endswith("/*") for r in resources), f"{role}: {a} on {resources}")
                if a == SM + "ListSecrets":
                    check(role in ("sweep", "provision", "rotate"), f"{role}: ListSecrets")
                if a in (SM + "CreateSecret",):
                    cond = st.get("Condition", {}).get("StringEquals", {})
                    check(cond.get(f"aws:RequestTag/{MANAGED_TAG}") == MANAGED_VALUE, f"{role}: CreateSecret untagged")
                if a == SM + "GetSecretValue" and st.get("Sid") == "ReadTheManagementKey":
                    check(len(resources) == 1 and ":secret:" in resources[0] and "*" not in resources[0],
                          f"{role}: management key read not scoped to one secret: {resources}")
                if a == "lambda:InvokeFunction":
                    want = "sweep" if role == "scheduler" else "rotate"
                    check(all(r.endswith(f":function:orkv-{want}") for r in resources), f"{role}: invoke on {resources}")
                if a == "sqs:SendMessage":
                    want = "orkv-undelivered" if role == "scheduler" else "orkv-failed"
                    check(all(r.endswith(f":{want}") for r in resources), f"{role}: SendMessage on {resources}")
                if a == "events:PutEvents":
                    # Result events: the one bus, under the product's source only.
                    check(len(resources) == 1 and ":event-bus/" in resources[0] and "*" not in resources[0],
                          f"{role}: PutEvents on {resources}")
                    cond = st.get("Condition", {}).get("StringEquals", {})
                    check(cond.get("events:source") == "orkv.key-vending", f"{role}: PutEvents without the source condition")
                if a.startswith("logs:"):
                    check(all(f"/aws/lambda/orkv-{role}:" in r for r in resources), f"{role}: logs on {resources}")
                if a.startswith("kms:") and st.get("Sid") != "DecryptTheSchedule":
                    check("kms:ViaService" in json.dumps(st.get("Condition", {})), f"{role}: kms without ViaService")
        extra = allowed - EXPECTED[role]
        missing = EXPECTED[role] - allowed
        check(not extra, f"{role}: allows actions its code does not use: {sorted(extra)}")
        check(not missing, f"{role}: lacks actions its code uses: {sorted(missing)}")
        print(f"    {role}: {len(allowed)} actions in {counted} allow statements, {len(extra)} extra, {len(missing)} missing")
    for f in failures:
        print(f"policy check: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
