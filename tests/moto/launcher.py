"""Starts moto_server with Lambda invocations forwarded to an HTTP endpoint.

moto cannot run Lambda code without Docker. This launcher replaces its Lambda backend's
`invoke` so that every invocation -- from the Lambda API, from Step Functions' lambda
tasks, which call that API, and from SNS subscriptions of protocol lambda -- is POSTed to

    $DEEPALERT_LAMBDA_FORWARD/2015-03-31/functions/<function name>/invocations

the Lambda Invoke API that `cargo lambda watch` also serves. The endpoint answers with
the function's response; a failed function answers with an `X-Amz-Function-Error` header,
which is passed on.

CloudFormation's work is done by `cfn_patch` (see there): `aws cloudformation deploy`
against this moto creates, updates and deletes stacks of our templates as AWS does. And
limits AWS enforces and moto does not are enforced here: a function's environment of at
most 4 KB, function names of at most 64 characters, state machine and execution names of
at most 80.

It also counts what the stack asks of AWS, for `make cost`: every request signed with the
access key `stack` (the one the tests give the stack's functions; the tests' own set-up and
checks use another) is recorded with its service, action and billable units, and served at
GET /moto-api/deepalert/requests (POST /moto-api/deepalert/reset clears it).

usage: python launcher.py PORT   (env DEEPALERT_LAMBDA_FORWARD=http://127.0.0.1:NNNN)
"""

import io
import json
import math
import os
import re
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request

import moto.server
from moto.awslambda import models
from moto.awslambda.exceptions import InvalidParameterValueException
from moto.moto_server.threaded_moto_server import DomainDispatcherApplication
from moto.server import main
from moto.stepfunctions import models as sfn_models
from moto.stepfunctions.exceptions import InvalidName

import cfn_patch

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


# ---- Limits AWS enforces and moto does not (AWS's behaviour, each) ----

ENVIRONMENT_LIMIT = 4096
FUNCTION_NAME_LIMIT = 64
STATES_NAME_LIMIT = 80


def check_environment(spec):
    variables = (spec.get("Environment") or {}).get("Variables") or {}
    measured = json.dumps(variables, separators=(",", ":"))
    if len(measured.encode("utf-8")) > ENVIRONMENT_LIMIT:
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the environment variables "
            "you have provided exceeded the 4KB limit. String measured: %s" % measured)


ORIGINAL_CREATE_FUNCTION = models.LambdaBackend.create_function
ORIGINAL_UPDATE_CONFIGURATION = models.LambdaBackend.update_function_configuration
ORIGINAL_VALIDATE_NAME = sfn_models.StepFunctionBackend._validate_name


def create_function(self, spec):
    name = spec.get("FunctionName") or ""
    if not name.startswith("arn:") and len(name) > FUNCTION_NAME_LIMIT:
        raise InvalidParameterValueException(
            "1 validation error detected: Value '%s' at 'functionName' failed to satisfy constraint: "
            "Member must have length less than or equal to %d" % (name, FUNCTION_NAME_LIMIT))
    check_environment(spec)
    return ORIGINAL_CREATE_FUNCTION(self, spec)


def update_function_configuration(self, function_name, qualifier, body):
    check_environment(body)
    return ORIGINAL_UPDATE_CONFIGURATION(self, function_name, qualifier, body)


def validate_states_name(self, name):
    # State machine and execution names: at most 80 characters.
    if len(name) > STATES_NAME_LIMIT:
        raise InvalidName("Invalid Name: '%s' (longer than %d characters)" % (name, STATES_NAME_LIMIT))
    return ORIGINAL_VALIDATE_NAME(self, name)


models.LambdaBackend.create_function = create_function
models.LambdaBackend.update_function_configuration = update_function_configuration
sfn_models.StepFunctionBackend._validate_name = validate_states_name


# ---- What the stack asks of AWS ----

RECORDS = []
RECORDS_LOCK = threading.Lock()
COUNTED_KEY = "stack"


def value_size(v):
    """DynamoDB's item size rules, near enough: names and values in bytes."""
    (kind, x), = v.items()
    if kind == "S":
        return len(x.encode("utf-8"))
    if kind == "N":
        return len(x.lstrip("-").replace(".", "")) // 2 + 1
    if kind in ("B",):
        return len(x) * 3 // 4
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode("utf-8")) + value_size(y) for k, y in x.items())
    if kind == "L":
        return 3 + sum(1 + value_size(y) for y in x)
    if kind in ("SS", "NS", "BS"):
        return sum(len(str(y)) for y in x)
    return 1


def item_size(item):
    return sum(len(k.encode("utf-8")) + value_size(v) for k, v in (item or {}).items())


def kb(size, unit):
    return max(1, math.ceil(size / unit))


def dynamodb_units(action, req, resp):
    """(write units, read units) of one request, as on-demand capacity bills them."""
    if action == "PutItem":
        return kb(item_size(req.get("Item")), 1024), 0
    if action in ("UpdateItem", "DeleteItem"):
        return 1, 0
    if action == "BatchWriteItem":
        w = 0
        for reqs in req.get("RequestItems", {}).values():
            for r in reqs:
                w += kb(item_size(r.get("PutRequest", {}).get("Item")), 1024)
        return w, 0
    if action == "TransactWriteItems":
        w = 0
        for it in req.get("TransactItems", []):
            if "Put" in it:
                w += 2 * kb(item_size(it["Put"].get("Item")), 1024)
            else:
                w += 2
        return w, 0
    if action == "GetItem":
        size = item_size((resp or {}).get("Item"))
        units = kb(size, 4096)
        return 0, units if req.get("ConsistentRead") else units / 2
    if action == "Query":
        size = sum(item_size(i) for i in (resp or {}).get("Items", []))
        units = kb(size, 4096)
        return 0, units if req.get("ConsistentRead") else units / 2
    return 0, 0


class CountingApp(DomainDispatcherApplication):
    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/moto-api/deepalert/requests":
            with RECORDS_LOCK:
                body = json.dumps(RECORDS).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if path.startswith("/moto-api/deepalert/stacks/"):
            region, name = path[len("/moto-api/deepalert/stacks/"):].split("/", 1)
            body = cfn_patch.described(region, name)
            status = "200 OK" if body is not None else "404 Not Found"
            body = body if body is not None else b"{}"
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if path == "/moto-api/deepalert/reset":
            with RECORDS_LOCK:
                RECORDS.clear()
            start_response("200 OK", [("Content-Length", "2")])
            return [b"{}"]
        auth = environ.get("HTTP_AUTHORIZATION", "")
        m = re.search(r"Credential=([^/]+)/[^/]+/[^/]+/([^/]+)/", auth)
        if not m or m.group(1) != COUNTED_KEY:
            return super().__call__(environ, start_response)
        service = m.group(2)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target:
            action = target.rsplit(".", 1)[-1]
        else:
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
            action = (form.get("Action") or [""])[0]
        status = {}

        def capture(s, headers, exc_info=None):
            status["code"] = int(s.split()[0])
            return start_response(s, headers, exc_info)
        chunks = list(super().__call__(environ, capture))
        record = {"service": service, "action": action, "status": status.get("code", 0),
                  "request_bytes": len(body), "response_bytes": sum(len(c) for c in chunks)}
        try:
            req = json.loads(body) if target and body else {}
        except ValueError:
            req = {}
        if service == "dynamodb":
            try:
                resp = json.loads(b"".join(chunks)) if action in ("GetItem", "Query") else {}
            except ValueError:
                resp = {}
            record["wru"], record["rru"] = dynamodb_units(action, req, resp)
        elif service == "sns":
            if action == "PublishBatch":
                form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
                messages = [v[0] for k, v in form.items() if k.endswith(".Message")]
            else:
                form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
                messages = form.get("Message") or [""]
            # Billed per 64 KB chunk of each message.
            record["billed"] = sum(kb(len(m.encode("utf-8")), 65536) for m in messages)
        elif service == "sqs":
            if action == "ReceiveMessage":
                try:
                    record["messages"] = len(json.loads(b"".join(chunks)).get("Messages") or [])
                except ValueError:
                    record["messages"] = 0
            record["billed"] = kb(len(body), 65536)
        with RECORDS_LOCK:
            RECORDS.append(record)
        return chunks


moto.server.DomainDispatcherApplication = CountingApp

if __name__ == "__main__":
    port = sys.argv[1] if len(sys.argv) > 1 else "5000"
    cfn_patch.install("http://127.0.0.1:%s" % port)
    sys.exit(main(["-H", "127.0.0.1", "-p", port]))
