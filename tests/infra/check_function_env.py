"""After apply: reads each function's environment back from moto (as Lambda would hand it to the
binary) and runs the real function binary with `--check-config` in exactly that environment, so a
variable the module renders wrongly fails here, not at the first cold start in AWS.
Usage: check_function_env.py ENDPOINT BINARY_DIR"""
import os
import subprocess
import sys

import boto3

endpoint, bin_dir = sys.argv[1], sys.argv[2]
kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
client = boto3.client("lambda", **kw)
failed = 0
for f in ("provision", "rotate", "sweep"):
    conf = client.get_function_configuration(FunctionName=f"orkv-{f}")
    # No reservation by default: Lambda keeps 100 of the account's concurrency unreserved and a
    # new account may have a quota of 10, so a default reservation fails the first apply there.
    reserved = client.get_function_concurrency(FunctionName=f"orkv-{f}").get("ReservedConcurrentExecutions")
    if reserved is not None:
        failed += 1
        print(f"    {f}: reserves {reserved} concurrent executions by default")
    env = dict(conf.get("Environment", {}).get("Variables", {}))
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    out = subprocess.run([os.path.join(bin_dir, f), "--check-config"], env=env, capture_output=True, text=True, timeout=30)
    ok = out.returncode == 0 and "configuration ok" in out.stdout
    print(f"    {f}: {len(env) - 1} variables, runtime {conf['Runtime']}, {conf['MemorySize']} MB, "
          f"{conf['Timeout']} s, {conf['Architectures'][0]}: {'configuration ok' if ok else 'REJECTED'}")
    if not ok:
        failed += 1
        print(out.stdout + out.stderr)
sys.exit(1 if failed else 0)
