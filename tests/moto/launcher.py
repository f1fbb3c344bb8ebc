"""Starts moto_server with Lambda invocations forwarded to an HTTP endpoint.

moto cannot run Lambda code without Docker. This launcher replaces its Lambda backend's
`invoke` so that every invocation -- from the Lambda API, from Step Functions' lambda
tasks, which call that API, and from SNS subscriptions of protocol lambda -- is POSTed to

    $DEEPALERT_LAMBDA_FORWARD/2015-03-31/functions/<function name>/invocations

the Lambda Invoke API that `cargo lambda watch` also serves. The endpoint answers with
the function's response; a failed function answers with an `X-Amz-Function-Error` header,
which is passed on. Everything else is plain moto.

usage: python launcher.py PORT   (env DEEPALERT_LAMBDA_FORWARD=http://127.0.0.1:NNNN)
"""

import os
import sys
import urllib.error
import urllib.request

from moto.awslambda import models
from moto.server import main

FORWARD = os.environ.get("DEEPALERT_LAMBDA_FORWARD", "").rstrip("/")


def forward_invoke(self, function_name, qualifier, body, headers, response_headers):
    fn = self.get_function(function_name, qualifier)
    return forward(fn.function_name, body, response_headers)


def forward(function_name, body, response_headers):
    if not FORWARD:
        raise RuntimeError("DEEPALERT_LAMBDA_FORWARD is not set: no endpoint to run %s" % function_name)
    if body is None:
        body = b"{}"
    elif isinstance(body, str):
        body = body.encode("utf-8")
    url = "%s/2015-03-31/functions/%s/invocations" % (FORWARD, function_name)
    request = urllib.request.Request(url, data=body, method="POST", headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as resp:
            payload = resp.read()
            error = resp.headers.get("X-Amz-Function-Error")
    except urllib.error.HTTPError as e:
        payload = e.read()
        error = "Unhandled"
    if error:
        response_headers["x-amz-function-error"] = error
    response_headers["Content-Length"] = str(len(payload))
    return payload


def forward_function_invoke(self, body, request_headers, response_headers):
    # SNS → Lambda subscriptions call the function object directly.
    return forward(self.function_name, body, response_headers)


models.LambdaBackend.invoke = forward_invoke
models.LambdaFunction.invoke = forward_function_invoke

if __name__ == "__main__":
    port = sys.argv[1] if len(sys.argv) > 1 else "5000"
    sys.exit(main(["-H", "127.0.0.1", "-p", port]))
