"""The example deployed with a customer managed key (`kms_key_arn`), as a customer does it: the
key exists before the module (the module never creates it), its policy gets the statements the
module renders before the first apply (read from a plan: CloudWatch Logs refuses a log group
whose key it may not use, AWS CloudWatch Logs User Guide, "Encrypt log data in CloudWatch Logs
using AWS KMS", step 2), then the apply, read back from moto through its own API.

Usage:
  customer_key.py create ENDPOINT                 prints the ARN of a new symmetric key whose policy
                                                  is AWS's default key policy (account root)
  customer_key.py attach ENDPOINT ARN PLAN_JSON   adds the planned output
                                                  customer_key_policy_statements to the key's policy
  customer_key.py check ENDPOINT ARN POLICIES_JSON
      every resource the module makes that can hold a key holds this one (functions' environment,
      log groups, queues, alarm topic, the sweep's schedule), the module made no key of its own,
      the functions are told the key (ORKV_DEFAULT_KMS_KEY_ID), and each role's KMS statements
      name this key only: through Secrets Manager or SQS (kms:ViaService) for the functions, and
      kms:Decrypt for the scheduler role (EventBridge Scheduler User Guide, "Data encryption":
      the execution role needs kms:Decrypt on a customer key or the schedule never runs)."""
import json
import sys

import boto3

ACCOUNT_ROOT = "arn:aws:iam::123456789012:root"


def clients(endpoint):
    kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    return lambda name: boto3.client(name, **kw)


def default_policy():
    # AWS KMS Developer Guide, "Default key policy": the account root, so IAM policies govern it.
    return {
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": ACCOUNT_ROOT},
            "Action": "kms:*",
            "Resource": "*",
        }],
    }


def create(client):
    kms = client("kms")
    key = kms.create_key(Description="a team's customer managed key", Policy=json.dumps(default_policy()))
    print(key["KeyMetadata"]["Arn"])
    return 0


def attach(client, arn, plan_json):
    plan = json.load(open(plan_json))
    value = plan["planned_values"]["outputs"]["customer_key_policy_statements"]["value"]
    rendered = json.loads(value)["Statement"]
    kms = client("kms")
    policy = json.loads(kms.get_key_policy(KeyId=arn, PolicyName="default")["Policy"])
    sids = {s.get("Sid") for s in policy["Statement"]}
    policy["Statement"] += [s for s in rendered if s.get("Sid") not in sids]
    kms.put_key_policy(KeyId=arn, PolicyName="default", Policy=json.dumps(policy))
    back = json.loads(kms.get_key_policy(KeyId=arn, PolicyName="default")["Policy"])
    print(f"    key policy: {sorted(s.get('Sid') for s in back['Statement'])}")
    return 0 if all(s in back["Statement"] for s in rendered) else 1


def listify(v):
    return v if isinstance(v, list) else [v]


def check(client, arn, policies_json):
    failures = []

    def expect(cond, msg):
        if not cond:
            failures.append(msg)

    holders = 0
    lam = client("lambda")
    for f in ("provision", "rotate", "sweep"):
        conf = lam.get_function_configuration(FunctionName=f"orkv-{f}")
        expect(conf.get("KMSKeyArn") == arn, f"function {f}: environment key {conf.get('KMSKeyArn')!r}")
        env = conf.get("Environment", {}).get("Variables", {})
        expect(env.get("ORKV_DEFAULT_KMS_KEY_ID") == arn, f"function {f}: ORKV_DEFAULT_KMS_KEY_ID {env.get('ORKV_DEFAULT_KMS_KEY_ID')!r}")
        holders += 1
    for g in client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/orkv-")["logGroups"]:
        expect(g.get("kmsKeyId") == arn, f"log group {g['logGroupName']}: key {g.get('kmsKeyId')!r}")
        holders += 1
    sqs = client("sqs")
    for url in sqs.list_queues(QueueNamePrefix="orkv-").get("QueueUrls", []):
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        expect(attrs.get("KmsMasterKeyId") == arn, f"queue {url}: key {attrs.get('KmsMasterKeyId')!r}")
        # Not checked: SqsManagedSseEnabled, which moto reports "true" on every queue whatever was
        # sent (AWS allows one of the two; the module sends none with a key: events.tf).
        holders += 1
    sns = client("sns")
    for t in sns.list_topics()["Topics"]:
        if ":orkv-" in t["TopicArn"]:
            key = sns.get_topic_attributes(TopicArn=t["TopicArn"])["Attributes"].get("KmsMasterKeyId")
            expect(key == arn, f"topic {t['TopicArn']}: key {key!r}")
            holders += 1
    sch = client("scheduler")
    for s in sch.list_schedules(NamePrefix="orkv-")["Schedules"]:
        key = sch.get_schedule(Name=s["Name"], GroupName=s.get("GroupName", "default")).get("KmsKeyArn")
        expect(key == arn, f"schedule {s['Name']}: key {key!r}")
        holders += 1
    kms = client("kms")
    # A key the module made is destroyed as AWS destroys one: scheduled for deletion, still listed.
    live = [k["KeyArn"] for k in kms.list_keys()["Keys"]
            if kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["KeyState"] != "PendingDeletion"]
    expect(live == [arn], f"the module made a key of its own besides the customer's: {live}")

    docs = json.load(open(policies_json))
    for role, doc in docs.items():
        doc = json.loads(doc) if isinstance(doc, str) else doc
        kms = [st for st in doc["Statement"] if any(a.startswith("kms:") for a in listify(st["Action"]))]
        expect(kms, f"{role}: no KMS statement with a customer key")
        for st in kms:
            expect(listify(st["Resource"]) == [arn], f"{role}: {st.get('Sid')} on {st['Resource']!r}, not the customer key only")
            if st.get("Sid") == "DecryptTheSchedule":
                expect(listify(st["Action"]) == ["kms:Decrypt"], f"{role}: the schedule's statement grants {st['Action']!r}")
            else:
                via = json.dumps(st.get("Condition", {}))
                expect("kms:ViaService" in via, f"{role}: {st.get('Sid')} without kms:ViaService")
    expect(any(st.get("Sid") == "DecryptTheSchedule"
               for doc in docs.values()
               for st in (json.loads(doc) if isinstance(doc, str) else doc)["Statement"]),
           "no role decrypts the schedule")
    print(f"    {holders} resources hold the customer key; {len(docs)} roles' KMS statements name it alone")
    for f in failures:
        print(f"customer key: {f}")
    return 1 if failures else 0


def main(argv):
    client = clients(argv[2])
    if argv[1] == "create":
        return create(client)
    if argv[1] == "attach":
        return attach(client, argv[3], argv[4])
    if argv[1] == "check":
        return check(client, argv[3], argv[4])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
