"""After `terraform destroy`: asks moto (the real API, through boto3) that none of the example's
resources is left. Usage: check_moto_empty.py ENDPOINT"""
import sys

import boto3

endpoint = sys.argv[1]
kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
PREFIX = "orkv"

left = []
left += [f["FunctionName"] for f in boto3.client("lambda", **kw).list_functions()["Functions"] if f["FunctionName"].startswith(PREFIX)]
left += [r["RoleName"] for r in boto3.client("iam", **kw).list_roles()["Roles"] if r["RoleName"].startswith(PREFIX)]
left += [u for u in boto3.client("sqs", **kw).list_queues().get("QueueUrls", []) if f"/{PREFIX}-" in u]
left += [r["Name"] for r in boto3.client("events", **kw).list_rules()["Rules"] if r["Name"].startswith(PREFIX)]
left += [s["Name"] for s in boto3.client("scheduler", **kw).list_schedules()["Schedules"] if s["Name"].startswith(PREFIX)]
left += [t["TopicArn"] for t in boto3.client("sns", **kw).list_topics()["Topics"] if f":{PREFIX}-" in t["TopicArn"]]
left += [a["AlarmName"] for a in boto3.client("cloudwatch", **kw).describe_alarms()["MetricAlarms"] if a["AlarmName"].startswith(PREFIX)]
left += [d["DashboardName"] for d in boto3.client("cloudwatch", **kw).list_dashboards()["DashboardEntries"] if d["DashboardName"].startswith(PREFIX)]
left += [g["logGroupName"] for g in boto3.client("logs", **kw).describe_log_groups()["logGroups"] if f"/{PREFIX}-" in g["logGroupName"]]
sm = boto3.client("secretsmanager", **kw)
left += [s["Name"] for s in sm.list_secrets(IncludePlannedDeletion=False)["SecretList"] if s["Name"].startswith(PREFIX)]
for name in left:
    print(f"left in moto after destroy: {name}")
print(f"    moto holds {len(left)} of the example's resources after destroy")
sys.exit(1 if left else 0)
