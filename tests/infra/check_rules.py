"""After apply: the failure rules match what they must and nothing else, judged by an EventBridge
pattern matcher this project did not write (moto's, `moto.events.models.EventPattern`, which its
rules use to route events; moto's TestEventPattern API itself is not implemented), on the pattern
the applied rule holds (DescribeRule): Secrets Manager's
RotationFailed (CloudTrail: the secret's ARN in detail.additionalEventData.SecretId) pages for a
secret under the managed prefix and not for any other secret of the account.
Usage: check_rules.py ENDPOINT SECRET_PREFIX"""
import json
import sys

import boto3
from moto.events.models import EventPattern

endpoint, prefix = sys.argv[1], sys.argv[2]
kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
events = boto3.client("events", **kw)
rule = events.describe_rule(Name="orkv-rotation-failed")
pattern = rule["EventPattern"]


def rotation_failed(secret_name: str) -> dict:
    arn = f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{secret_name}-AbCdEf"
    return ({
        "id": "7bf73129-1428-4cd3-a780-95db273d1602", "version": "0", "account": "123456789012",
        "time": "2026-12-07T00:00:00Z", "region": "us-east-1", "resources": [],
        "source": "aws.secretsmanager", "detail-type": "AWS Service Event via CloudTrail",
        "detail": {"eventVersion": "1.08", "eventSource": "secretsmanager.amazonaws.com",
                   "eventName": "RotationFailed", "eventType": "AwsServiceEvent",
                   "additionalEventData": {"SecretId": arn}},
    })


matcher = EventPattern.load(pattern)
cases = [(f"{prefix}checkout/payments", True), ("prod/database", False), (f"x{prefix}checkout/payments", False)]
failed = 0
for name, want in cases:
    got = matcher.matches_event(rotation_failed(name))
    print(f"    RotationFailed of {name}: {'pages' if got else 'ignored'}{'' if got == want else '  <- WRONG'}")
    failed += got != want
sys.exit(1 if failed else 0)
