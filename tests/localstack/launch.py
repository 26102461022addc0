"""Starts LocalStack's community core in host mode with one layer replaced: the execution of a
Lambda function whose environment names an invoke endpoint (``ORKV_BRIDGE_INVOKE_URL``).

Everything else stays LocalStack's own: the Lambda API (CreateFunction, GetFunction, qualifiers,
Invoke), Secrets Manager (RotateSecret, its checks, the four step invocations and its labels),
EventBridge, SQS. Only ``LambdaVersionManager`` (LocalStack's per-version execution layer, which
needs Docker to run a function) is patched, and only for such a function: ``start`` marks the
version Active without preparing a container, and ``invoke`` POSTs the invocation's payload to
``<ORKV_BRIDGE_INVOKE_URL>/2015-03-31/functions/<name>/invocations`` (the Lambda Invoke API,
which the test harness serves in front of the real function binary under the Lambda Runtime
API) and hands back its answer as the invocation result. See docs/aws-fidelity.md.
"""

import json
import logging
import urllib.error
import urllib.request

from localstack.aws.api.lambda_ import State
from localstack.services.lambda_.invocation import version_manager as vm
from localstack.services.lambda_.invocation.lambda_models import InvocationResult, VersionState

LOG = logging.getLogger("orkv.bridge")
BRIDGE_VAR = "ORKV_BRIDGE_INVOKE_URL"
# Longer than the rotate function's own timeout: a step that hangs is the function's to end.
BRIDGE_TIMEOUT_S = 120

_start = vm.LambdaVersionManager.start
_invoke = vm.LambdaVersionManager.invoke
_stop = vm.LambdaVersionManager.stop


def _bridge_url(manager) -> str | None:
    env = manager.function_version.config.environment or {}
    return env.get(BRIDGE_VAR)


def start(self):
    if _bridge_url(self) is None:
        return _start(self)
    self.state = VersionState(state=State.Active)
    LOG.info("bridged %s to %s", self.function_arn, _bridge_url(self))
    return self.state


def stop(self):
    if _bridge_url(self) is None:
        return _stop(self)
    self.state = VersionState(state=State.Inactive)
    self.shutdown_event.set()


def invoke(self, *, invocation):
    url = _bridge_url(self)
    if url is None:
        return _invoke(self, invocation=invocation)
    name = self.function_version.id.function_name
    target = f"{url.rstrip('/')}/2015-03-31/functions/{name}/invocations"
    request = urllib.request.Request(
        target,
        data=invocation.payload,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Lambda-Runtime-Invoked-Function-Arn": invocation.invoked_arn,
            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=BRIDGE_TIMEOUT_S) as reply:
            payload = reply.read()
            is_error = reply.headers.get("X-Amz-Function-Error") is not None
    except urllib.error.HTTPError as e:
        payload, is_error = e.read(), True
    except OSError as e:
        payload = json.dumps({"errorType": "BridgeUnreachable", "errorMessage": str(e)}).encode()
        is_error = True
    LOG.info("bridged invocation %s of %s: error=%s", invocation.request_id, name, is_error)
    return InvocationResult(
        request_id=invocation.request_id,
        payload=payload,
        is_error=is_error,
        logs="",
        executed_version=self.function_version.id.qualifier,
    )


vm.LambdaVersionManager.start = start
vm.LambdaVersionManager.stop = stop
vm.LambdaVersionManager.invoke = invoke

if __name__ == "__main__":
    from localstack.runtime.main import main

    main()
