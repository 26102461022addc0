"""make demo, rotation part: what the sweeps did and which keys work. Prints no plaintext."""
import json
import sys
import urllib.error
import urllib.request

run, moto, emu, mgmt, phase = sys.argv[1:6]
NAME = "openrouter/checkout/demo-rotation"


def sm(target, body):
    req = urllib.request.Request(
        f"http://127.0.0.1:{moto}/", method="POST", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"secretsmanager.{target}",
                 "Authorization": "AWS4-HMAC-SHA256 Credential=demo/20260101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=x"})
    return json.load(urllib.request.urlopen(req))


def status(path, key):
    req = urllib.request.Request(f"http://127.0.0.1:{emu}/api/v1{path}", headers={"Authorization": f"Bearer {key}"})
    try:
        return urllib.request.urlopen(req).status
    except urllib.error.HTTPError as e:
        return e.code


cur = json.loads(sm("GetSecretValue", {"SecretId": NAME, "VersionStage": "AWSCURRENT"})["SecretString"])
if phase == "after-rotation":
    w = json.load(open(f"{run}/w1.json"))
    print(f"sweep {w['run_id']}: scanned {w['secrets_scanned']} secrets in {w['list_calls']} list call(s); "
          f"rotations due {w['rotations_due']}, completed {w['rotations_completed']}")
    prev = json.loads(sm("GetSecretValue", {"SecretId": NAME, "VersionStage": "AWSPREVIOUS"})["SecretString"])
    print(f"AWSCURRENT : generation {cur['generation']}, key {cur['key_hash'][:16]}.., GET /key -> {status('/key', cur['api_key'])}")
    print(f"AWSPREVIOUS: generation {prev['generation']}, key {prev['key_hash'][:16]}.., GET /key -> "
          f"{status('/key', prev['api_key'])} (still valid in its grace period)")
    open(f"{run}/old-hash", "w").write(prev["key_hash"])
else:
    s2 = json.load(open(f"{run}/s2.json"))
    print(f"provision reply: {s2['status']}, generation {s2['generation']}, rotate_at {s2['rotate_at']}")
    w = json.load(open(f"{run}/w2.json"))
    print(f"sweep {w['run_id']}: keys retired {w['keys_retired']}, rotations due {w['rotations_due']}, orphans {w['orphans_found']}")
    old = open(f"{run}/old-hash").read().strip()
    print(f"AWSCURRENT : generation {cur['generation']}, key {cur['key_hash'][:16]}.., GET /key -> {status('/key', cur['api_key'])}")
    print(f"generation 1 key {old[:16]}..: GET /keys/{{hash}} -> {status('/keys/' + old, mgmt)} "
          f"(retired: disabled, deleted, confirmed by reading back)")
