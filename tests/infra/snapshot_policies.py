"""The policy documents the module rendered (terraform output -json policy_documents), in the
form the test suites evaluate every AWS call against (tests/src/iam.rs): each document parsed,
the region and account replaced by ${Region} and ${Account}, and the random six characters AWS
appends to a secret's name (the management key's ARN) replaced by IAM's one-character wildcard,
and the unique suffix Terraform gives a name made from a prefix by `*`.

Usage: snapshot_policies.py POLICIES_JSON REGION ACCOUNT SNAPSHOT [--update]
Compares the rendering with SNAPSHOT (tests/infra/rendered-policies.json); --update writes it."""
import json
import re
import sys


def normalise(text: str, region: str, account: str) -> str:
    text = text.replace(f":{region}:", ":${Region}:").replace(f":{account}:", ":${Account}:")
    text = text.replace(f"secretsmanager.{region}.", "secretsmanager.${Region}.")
    text = text.replace(f"sqs.{region}.", "sqs.${Region}.")
    text = re.sub(r"(:secret:[A-Za-z0-9/_+=.@-]+)-[A-Za-z0-9]{6}\"", r'\1-??????"', text)
    # A name Terraform made from a prefix (name_prefix): its 26-digit unique suffix.
    return re.sub(r"-\d{26}-\?\?\?\?\?\?\"", '-*-??????"', text)


def main() -> int:
    rendered, region, account, snapshot = sys.argv[1:5]
    docs = json.load(open(rendered))
    out = {role: json.loads(normalise(text, region, account)) for role, text in sorted(docs.items())}
    text = json.dumps(out, indent=2, sort_keys=True) + "\n"
    if "--update" in sys.argv:
        open(snapshot, "w").write(text)
        print(f"    wrote {snapshot}")
        return 0
    try:
        old = open(snapshot).read()
    except FileNotFoundError:
        old = ""
    if old != text:
        print(f"{snapshot} is not what the module renders: the suites would evaluate calls against stale policies.")
        print("Regenerate it with: ORKV_UPDATE_POLICIES=1 make infra-test")
        import difflib
        sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), text.splitlines(True), snapshot, "rendered"))
        return 1
    print(f"    {snapshot} matches the rendering ({len(out)} roles)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
