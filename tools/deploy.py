#!/usr/bin/env python3
"""`make deploy`: render deploy.jsonnet and stack.jsonnet, then package and deploy
template.yaml with the AWS CLI.

usage: deploy.py [--dry-run] [--deploy FILE] [--stack FILE]
  --dry-run      print the commands and run nothing
  --deploy/--stack  other configuration files (default: deploy.jsonnet, stack.jsonnet)
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


def template_parameters():
    # Parameter names and types, read without a YAML library: the Parameters block is
    # plain two-level YAML at the top of template.yaml.
    params, current, inside = {}, None, False
    with open(os.path.join(ROOT, "template.yaml"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("Parameters:"):
                inside = True
                continue
            if inside and line and not line[0].isspace() and line.strip():
                break
            if inside and line.startswith("  ") and not line.startswith("    ") and line.strip().endswith(":"):
                current = line.strip()[:-1]
                params[current] = "String"
            elif inside and current and line.strip().startswith("Type:"):
                params[current] = line.split(":", 1)[1].strip()
    return params


def plan(deploy_path, stack_path):
    deploy = render(deploy_path)
    stack = render(stack_path)
    for field, kind in DEPLOY_FIELDS.items():
        if not isinstance(deploy.get(field), kind):
            fail("deploy.jsonnet: %s must be a %s" % (field, kind.__name__))
    unknown = set(deploy) - set(DEPLOY_FIELDS)
    if unknown:
        fail("deploy.jsonnet: unknown field(s) %s (known: %s)" % (", ".join(sorted(unknown)), ", ".join(DEPLOY_FIELDS)))
    if deploy["CodeS3Bucket"].startswith("REPLACE-"):
        fail("deploy.jsonnet: set CodeS3Bucket to an S3 bucket of yours in %s" % deploy["Region"])
    params = template_parameters()
    build_env = {}
    policies = stack.pop("ReviewerPolicies", "")
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
            fail("stack.jsonnet: %s is not a parameter of template.yaml (parameters: %s)" % (key, ", ".join(sorted(params))))
        if params[key] == "Number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            fail("stack.jsonnet: %s must be a number, got %r" % (key, value))
        if params[key] == "String" and not isinstance(value, str):
            fail("stack.jsonnet: %s must be a string, got %r" % (key, value))
        overrides.append("%s=%s" % (key, value))
    packaged = os.path.join(ROOT, "target", "packaged.yaml")
    build = [f"{k}={v}" for k, v in build_env.items()] + ["make", "-C", ROOT, "build"]
    return deploy, [
        build,
        ["aws", "sts", "get-caller-identity", "--region", deploy["Region"]],
        ["aws", "cloudformation", "package", "--region", deploy["Region"],
         "--template-file", os.path.join(ROOT, "template.yaml"),
         "--s3-bucket", deploy["CodeS3Bucket"], "--s3-prefix", deploy["CodeS3Prefix"],
         "--output-template-file", packaged],
        ["aws", "cloudformation", "deploy", "--region", deploy["Region"],
         "--template-file", packaged, "--stack-name", deploy["StackName"],
         "--capabilities", "CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND", "--no-fail-on-empty-changeset",
         "--parameter-overrides"] + overrides,
    ]


def main():
    parser = argparse.ArgumentParser(description="Deploy deepalert to AWS.")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--deploy", default=os.path.join(ROOT, "deploy.jsonnet"))
    parser.add_argument("--stack", default=os.path.join(ROOT, "stack.jsonnet"))
    args = parser.parse_args()
    deploy, commands = plan(args.deploy, args.stack)
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
    build = commands[0]
    env = dict(os.environ, **dict(kv.split("=", 1) for kv in build if "=" in kv and not kv.startswith("-")))
    build_cmd = [c for c in build if "=" not in c]
    print("+ " + " ".join(build), flush=True)
    if subprocess.run(build_cmd, env=env).returncode != 0:
        fail("make build failed")
    missing = [f for f in LAMBDAS if not os.path.exists(os.path.join(ROOT, "target", "lambda", f, "bootstrap.zip"))]
    if missing:
        fail("no zip for %s after make build" % ", ".join(missing))
    for c in commands[2:]:
        print("+ " + " ".join(c), flush=True)
        if subprocess.run(c).returncode != 0:
            fail("%s failed" % " ".join(c[:3]))
    print("deployed stack %s in %s" % (deploy["StackName"], deploy["Region"]))


if __name__ == "__main__":
    main()
