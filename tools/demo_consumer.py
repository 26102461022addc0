"""make demo, the consumer: reads every managed secret the way applications do
(GetSecretValue without a stage, through the strict layer, which answers AWSCURRENT as AWS does)
and calls GET /key with what it read, until stopped. A key refused (401-403) while its record is
still current is a failure. Writes "reads failures" to OUT after every pass. Prints no plaintext."""
import json
import sys
import time
import urllib.error
import urllib.request

proxy, emu, out = sys.argv[1:4]


def sm(target, body):
    req = urllib.request.Request(
        proxy + "/", method="POST", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"secretsmanager.{target}",
                 "Authorization": "AWS4-HMAC-SHA256 Credential=demo/20260101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=x"})
    return json.load(urllib.request.urlopen(req, timeout=5))


def key_status(key):
    req = urllib.request.Request(f"http://127.0.0.1:{emu}/api/v1/key", headers={"Authorization": f"Bearer {key}"})
    try:
        return urllib.request.urlopen(req, timeout=5).status
    except urllib.error.HTTPError as e:
        return e.code


reads = failures = 0
while True:
    try:
        names = [s["Name"] for s in sm("ListSecrets", {"Filters": [{"Key": "tag-key", "Values": ["orkv:managed-by"]}]})["SecretList"]]
    except (urllib.error.URLError, OSError, KeyError, ValueError):
        names = []
    for name in names:
        try:
            v = sm("GetSecretValue", {"SecretId": name})
            record = json.loads(v["SecretString"])
        except (urllib.error.URLError, OSError, KeyError, ValueError):
            continue
        reads += 1
        if record.get("state") != "active":
            continue
        if 401 <= key_status(record.get("api_key", "")) <= 403:
            again = sm("GetSecretValue", {"SecretId": name})
            if again.get("VersionId") == v.get("VersionId"):
                failures += 1
    with open(out, "w") as f:
        f.write(f"{reads} {failures}\n")
    time.sleep(0.2)
