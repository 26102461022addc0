"""Reads `terraform output -json` of the applied example (its teams are tenants) and asserts that
each tenant's principals may invoke only that tenant's alias, that every key-request rule targets
a tenant's alias and none the unqualified function, and that each tenant's policies are scoped
to it. Usage: check_tenants.py OUTPUTS_JSON"""
import json
import sys

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)


def main() -> int:
    out = {k: v["value"] for k, v in json.load(open(sys.argv[1])).items()}
    tenants = out["tenants"]
    grants = out["invoke_grants"]
    targets = out["event_targets"]
    check(len(tenants) >= 2, f"the example has at least two tenants: {sorted(tenants)}")
    alias_of = {name: t["alias_arn"] for name, t in tenants.items()}
    for name, arn in alias_of.items():
        check(arn.endswith(f":{name}"), f"{name}: alias ARN {arn} is qualified by the tenant")
        doc = json.loads(tenants[name]["invoke_policy_json"])
        resources = [r for st in doc["Statement"] for r in (st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]])]
        check(resources == [arn], f"{name}: its pipeline policy reaches only its alias: {resources}")
        put = tenants[name]["put_events_policy_json"]
        if tenants[name]["event_sources"]:
            st = json.loads(put)["Statement"][0]
            cond = st.get("Condition", {}).get("StringEquals", {}).get("events:source")
            cond = cond if isinstance(cond, list) else [cond]
            check(sorted(cond) == sorted(tenants[name]["event_sources"]),
                  f"{name}: PutEvents bound to its own sources by events:source: {cond}")
    # Every grant names an alias; a principal is granted one tenant's alias (or the admin one).
    by_principal = {}
    for g in grants:
        check(g["qualifier"] != "", f"no grant on the unqualified function: {g}")
        by_principal.setdefault(g["principal"], set()).add(g["qualifier"])
        if g["principal"] == "events.amazonaws.com":
            tenant = g["qualifier"]
            check(tenant in tenants, f"EventBridge grant on a tenant alias: {g}")
            check(g["source_arn"] == tenants.get(tenant, {}).get("event_rule_arn"),
                  f"{tenant}: EventBridge may invoke its alias only from its own rule: {g}")
    for principal, quals in by_principal.items():
        if principal != "events.amazonaws.com":
            check(len(quals) == 1, f"{principal} may invoke one alias only: {sorted(quals)}")
    check(any(q == {"platform-admin"} for q in by_principal.values()), "the admin role invokes the platform-admin alias")
    # Rules: each targets its tenant's alias; none the unqualified function.
    for rule, arn in targets.items():
        check(any(arn == a for a in alias_of.values()), f"rule {rule} targets a tenant alias, not {arn}")
        check(arn.count(":") == 7, f"rule {rule} targets a qualified ARN: {arn}")
    check(len(targets) == sum(1 for t in tenants.values() if t["event_sources"]), f"one rule per tenant with sources: {targets}")
    for f in failures:
        print(f"tenant check: {f}", file=sys.stderr)
    if not failures:
        print(f"    {len(tenants)} tenants: {len(grants)} grants, each on one alias; {len(targets)} rules, each on its tenant's alias")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
