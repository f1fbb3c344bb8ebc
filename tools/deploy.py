#!/usr/bin/env python3
"""`make deploy`: render deploy.jsonnet and stack.jsonnet, then package and deploy
template.yaml with the AWS CLI. `make deploy-builtins` (--builtins): the same for the
built-in plug-ins' stack, examples/aws/builtins.yaml with builtins.jsonnet, deployed as
<StackName>-builtins next to the deepalert stack.

usage: deploy.py [--dry-run] [--builtins] [--deploy FILE] [--stack FILE] [--template FILE]
  --dry-run      print the commands and run nothing
  --builtins     deploy the built-ins' stack (defaults: builtins.jsonnet, examples/aws/builtins.yaml)
  --deploy/--stack/--template  other files (default: deploy.jsonnet, stack.jsonnet, template.yaml)
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEPLOY_FIELDS = {"StackName": str, "Region": str, "CodeS3Bucket": str, "CodeS3Prefix": str}
# stack.jsonnet keys used at build time rather than passed to the template.
BUILD_FIELDS = {"ReviewerPolicies"}
LAMBDAS = ["receptor", "dispatcher", "inspector-gateway", "review-invoker", "emitter-publisher"]
BUILTIN_LAMBDAS = ["builtin"]


def fail(msg):
    print("deploy: " + msg, file=sys.stderr)
    sys.exit(1)


def render(path):
    try:
        import _jsonnet
    except ImportError:
        fail("the jsonnet Python module is missing: run `make venv`")
    name = os.path.basename(path)
    if not os.path.exists(path):
        fail("%s does not exist" % path)
    try:
        value = json.loads(_jsonnet.evaluate_file(path))
    except RuntimeError as e:
        fail("%s: %s" % (name, e))
    if not isinstance(value, dict):
        fail("%s must evaluate to an object" % name)
    return value


def template_parameters(template):
    # Parameter name -> {"type", "default"(bool)}, read without a YAML library: the
    # Parameters block is plain two-level YAML at the top of the template.
    params, current, inside = {}, None, False
    if not os.path.exists(template):
        fail("%s does not exist" % template)
    with open(template, encoding="utf-8") as f:
        for line in f:
            if line.startswith("Parameters:"):
                inside = True
                continue
            if inside and line and not line[0].isspace() and line.strip():
                break
            if inside and line.startswith("  ") and not line.startswith("    ") and line.strip().endswith(":"):
                current = line.strip()[:-1]
                params[current] = {"type": "String", "default": False}
            elif inside and current and line.strip().startswith("Type:"):
                params[current]["type"] = line.split(":", 1)[1].strip()
            elif inside and current and line.strip().startswith("Default:"):
                params[current]["default"] = True
    return params


def plan(deploy_path, stack_path, template, builtins=False):
    deploy = render(deploy_path)
    stack = render(stack_path)
    stack_file = os.path.basename(stack_path)
    template_file = os.path.basename(template)
    for field, kind in DEPLOY_FIELDS.items():
        if not isinstance(deploy.get(field), kind):
            fail("deploy.jsonnet: %s must be a %s" % (field, kind.__name__))
    unknown = set(deploy) - set(DEPLOY_FIELDS)
    if unknown:
        fail("deploy.jsonnet: unknown field(s) %s (known: %s)" % (", ".join(sorted(unknown)), ", ".join(DEPLOY_FIELDS)))
    if deploy["CodeS3Bucket"].startswith("REPLACE-"):
        fail("deploy.jsonnet: set CodeS3Bucket to an S3 bucket of yours in %s" % deploy["Region"])
    params = template_parameters(template)
    stack_name = deploy["StackName"]
    lambdas = LAMBDAS
    if builtins:
        stack_name = deploy["StackName"] + "-builtins"
        lambdas = BUILTIN_LAMBDAS
        # The built-ins import the deepalert stack's exports.
        if "DeepalertStack" in params:
            stack.setdefault("DeepalertStack", deploy["StackName"])
    for key, value in sorted(stack.items()):
        if isinstance(value, str) and value.startswith("REPLACE-"):
            fail("%s: set %s (it is still %r)" % (stack_file, key, value))
    build_env = {}
    policies = stack.pop("ReviewerPolicies", "") if not builtins else ""
    if not isinstance(policies, str):
        fail("stack.jsonnet: ReviewerPolicies must be a string (a directory), got %r" % (policies,))
    if policies:
        path = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(stack_path)), policies))
        if not os.path.isdir(path) or not any(f.endswith(".rego") for f in os.listdir(path)):
            fail("stack.jsonnet: ReviewerPolicies %r is not a directory of .rego files" % policies)
        build_env["DEEPALERT_POLICY_DIR"] = path
    overrides = []
    for key, value in sorted(stack.items()):
        if key not in params:
            fail("%s: %s is not a parameter of %s (parameters: %s)" % (stack_file, key, template_file, ", ".join(sorted(params))))
        if params[key]["type"] == "Number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            fail("%s: %s must be a number, got %r" % (stack_file, key, value))
        if params[key]["type"] == "String" and not isinstance(value, str):
            fail("%s: %s must be a string, got %r" % (stack_file, key, value))
        overrides.append("%s=%s" % (key, value))
    missing = [k for k, p in params.items() if k not in stack and not p["default"]]
    if missing:
        fail("%s: set %s (parameters of %s without a default)" % (stack_file, ", ".join(missing), template_file))
    packaged = os.path.join(ROOT, "target", "packaged-%s.yaml" % stack_name)
    # `env VAR=… make …`: one argv, run as it is printed.
    build = ["env"] + [f"{k}={v}" for k, v in build_env.items()] + ["make", "-C", ROOT, "build", "LAMBDAS=" + " ".join(lambdas)]
    return deploy, stack_name, lambdas, [
        build,
        ["aws", "sts", "get-caller-identity", "--region", deploy["Region"]],
        ["aws", "cloudformation", "package", "--region", deploy["Region"],
         "--template-file", template,
         "--s3-bucket", deploy["CodeS3Bucket"], "--s3-prefix", deploy["CodeS3Prefix"],
         "--output-template-file", packaged],
        ["aws", "cloudformation", "deploy", "--region", deploy["Region"],
         "--template-file", packaged, "--stack-name", stack_name,
         "--capabilities", "CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND", "--no-fail-on-empty-changeset",
         "--parameter-overrides"] + overrides,
    ]


def main():
    parser = argparse.ArgumentParser(description="Deploy deepalert to AWS.")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--builtins", action="store_true")
    parser.add_argument("--deploy", default=os.path.join(ROOT, "deploy.jsonnet"))
    parser.add_argument("--stack")
    parser.add_argument("--template")
    args = parser.parse_args()
    stack = args.stack or os.path.join(ROOT, "builtins.jsonnet" if args.builtins else "stack.jsonnet")
    template = os.path.abspath(args.template or os.path.join(
        ROOT, "examples/aws/builtins.yaml" if args.builtins else "template.yaml"))
    deploy, stack_name, lambdas, commands = plan(args.deploy, stack, template, args.builtins)
    if args.dry_run:
        for c in commands:
            print(" ".join(c))
        return
    if not shutil.which("aws"):
        fail("the AWS CLI is missing: run `make deploy` (it installs it into .venv)")
    check = subprocess.run(commands[1], capture_output=True, text=True)
    if check.returncode != 0:
        fail("no usable AWS credentials for %s (aws sts get-caller-identity said: %s).\n"
             "Configure them (aws configure, AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and retry."
             % (deploy["Region"], check.stderr.strip() or check.stdout.strip()))
    print("+ " + " ".join(commands[0]), flush=True)
    if subprocess.run(commands[0]).returncode != 0:
        fail("make build failed")
    missing = [f for f in lambdas if not os.path.exists(os.path.join(ROOT, "target", "lambda", f, "bootstrap.zip"))]
    if missing:
        fail("no zip for %s after make build" % ", ".join(missing))
    for c in commands[2:]:
        print("+ " + " ".join(c), flush=True)
        if subprocess.run(c).returncode != 0:
            fail("%s failed" % " ".join(c[:3]))
    print("deployed stack %s in %s" % (stack_name, deploy["Region"]))


if __name__ == "__main__":
    main()
