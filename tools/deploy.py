#!/usr/bin/env python3
"""`make deploy`: render deploy.jsonnet and stack.jsonnet, then package and deploy
template.yaml with the AWS CLI. `make deploy-builtins` (--builtins): the same for the
built-in plug-ins' stack, examples/aws/builtins.yaml with builtins.jsonnet, deployed as
<StackName>-builtins next to the deepalert stack.

Every template parameter is passed on every deploy: the value from the stack file, or the
template's default. (Left out, `aws cloudformation deploy` would keep a parameter's previous
value on an update, whatever the documentation says its default is.)

After `aws cloudformation package`, every function's artifact is checked: its CodeUri (read
per resource, as `package` reads it; Globals do not count) is a zip holding `bootstrap`, and
the packaged template points at exactly that zip.

usage: deploy.py [--dry-run] [--builtins] [--deploy FILE] [--stack FILE] [--template FILE]
       deploy.py --verify-packaged PACKAGED.json [--template FILE]
       deploy.py --check-zip ZIP [--arch arm64|x86_64]
  --dry-run      print the commands and run nothing
  --builtins     deploy the built-ins' stack (defaults: builtins.jsonnet, examples/aws/builtins.yaml)
  --deploy/--stack/--template  other files (default: deploy.jsonnet, stack.jsonnet, template.yaml)
  --verify-packaged  check a template packaged with `--use-json` against its source template
  --check-zip    check that a Lambda zip holds an executable `bootstrap` for the architecture
"""
import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEPLOY_FIELDS = {"StackName": str, "Region": str, "CodeS3Bucket": str, "CodeS3Prefix": str}
# deploy.jsonnet fields that may be left out, with their defaults.
OPTIONAL_DEPLOY_FIELDS = {"Regions": []}
LAMBDAS = ["receptor", "dispatcher", "inspector-gateway", "review-invoker", "emitter-publisher", "event-router", "flow-runner"]
# Where each preset's events come from (EventBridge source, detail-type): the stack's event
# rule takes these. Kept equal to the presets' own `sources()` by a test.
PRESET_SOURCES = {
    "root-login": [("aws.signin", "AWS Console Sign In via CloudTrail")],
    "suspicious-login-hour": [("aws.signin", "AWS Console Sign In via CloudTrail")],
    "suspicious-login-ip": [("aws.signin", "AWS Console Sign In via CloudTrail")],
    "non-compliant-user-created": [("aws.iam", "AWS API Call via CloudTrail")],
    "unauthorized-instance-created": [("aws.ec2", "AWS API Call via CloudTrail")],
}
FINDINGS_SOURCES = {
    "guardduty": ("aws.guardduty", "GuardDuty Finding"),
    "securityhub": ("aws.securityhub", "Security Hub Findings - Imported"),
}
# Template parameters written from Rules and Findings, and from Flows, Notifiers and
# FlowSecrets; never set by hand.
DERIVED_PARAMETERS = {"RulesConfig", "EventSources", "EventDetailTypes",
                      "FlowsConfig", "FlowActions", "FlowSecretArns", "FlowTopicArns"}
# Lambda allows 4 KB of environment per function; FLOWS_CONFIG shares it with the others.
FLOWS_CONFIG_LIMIT = 3000
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


def yaml_scalar(text):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def template_parameters(template):
    # Parameter name -> {"type", "default" (None when there is none)}, read without a
    # YAML library: the Parameters block is plain two-level YAML at the top of the template.
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
                params[current] = {"type": "String", "default": None}
            elif inside and current and line.strip().startswith("Type:"):
                params[current]["type"] = line.split(":", 1)[1].strip()
            elif inside and current and line.strip().startswith("Default:"):
                params[current]["default"] = yaml_scalar(line.split(":", 1)[1])
    return params


def load_template(path):
    try:
        from samtranslator.yaml_helper import yaml_parse
    except ImportError:
        fail("the SAM translator's YAML reader is missing: run `make venv`")
    with open(path, encoding="utf-8") as f:
        return yaml_parse(f.read())


def function_code(template_path):
    """Function logical id -> the zip its own CodeUri names (absolute path), as
    `aws cloudformation package` reads it: per resource, never from Globals."""
    t = load_template(template_path)
    base = os.path.dirname(os.path.abspath(template_path))
    out = {}
    for logical, r in (t.get("Resources") or {}).items():
        if r.get("Type") != "AWS::Serverless::Function":
            continue
        uri = (r.get("Properties") or {}).get("CodeUri")
        if not isinstance(uri, str) or not uri:
            fail("%s: %s has no CodeUri of its own; `aws cloudformation package` reads CodeUri per "
                 "function, not from Globals (it would upload the template's folder)" % (os.path.basename(template_path), logical))
        out[logical] = os.path.normpath(os.path.join(base, uri))
    return out


ELF_MACHINES = {"arm64": 0xB7, "x86_64": 0x3E}


def check_zip(path, arch=None):
    """None if `path` is a Lambda zip with an executable `bootstrap` (for `arch`), else why not."""
    if not os.path.isfile(path):
        return "%s does not exist" % path
    if not zipfile.is_zipfile(path):
        return "%s is not a zip" % path
    with zipfile.ZipFile(path) as z:
        try:
            info = z.getinfo("bootstrap")
        except KeyError:
            return "%s has no bootstrap at its root (it holds: %s)" % (path, ", ".join(z.namelist()[:10]) or "nothing")
        head = z.read(info)[:20]
    if (info.external_attr >> 16) & 0o111 == 0:
        return "%s: bootstrap is not executable" % path
    if arch:
        if head[:4] != b"\x7fELF":
            return "%s: bootstrap is not an ELF executable" % path
        machine = int.from_bytes(head[18:20], "little")
        if machine != ELF_MACHINES[arch]:
            return "%s: bootstrap is for ELF machine 0x%x, not %s" % (path, machine, arch)
    return None


def md5_of(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_packaged(template_path, packaged_path):
    """After `package`: every function's artifact is its own zip, holding bootstrap."""
    code = function_code(template_path)
    with open(packaged_path, encoding="utf-8") as f:
        packaged = json.load(f)
    problems = []
    for logical, zip_path in sorted(code.items()):
        why = check_zip(zip_path)
        if why:
            problems.append("%s: %s" % (logical, why))
            continue
        uri = ((packaged.get("Resources") or {}).get(logical, {}).get("Properties") or {}).get("CodeUri")
        if not isinstance(uri, str) or not uri.startswith("s3://"):
            problems.append("%s: packaged CodeUri is %r, not an S3 object" % (logical, uri))
        elif uri.rsplit("/", 1)[-1] != md5_of(zip_path):
            problems.append("%s: packaged %s is not %s (package uploaded something else)" % (logical, uri, zip_path))
    if problems:
        fail("the packaged template would deploy functions without their code:\n  " + "\n  ".join(problems))


def rules_parameters(stack, stack_path):
    """Rules and Findings of stack.jsonnet -> (RulesConfig, EventSources, EventDetailTypes,
    the directory of Rego rules to build in or None, the presets whose default flows notify
    someone)."""
    rules = stack.pop("Rules", [])
    findings = stack.pop("Findings", {})
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        fail("stack.jsonnet: Rules must be a list of objects ({preset: ...} or {policies: ...})")
    if not isinstance(findings, dict) or set(findings) - set(FINDINGS_SOURCES) or not all(isinstance(v, bool) for v in findings.values()):
        fail("stack.jsonnet: Findings is {guardduty: true|false, securityhub: true|false}")
    findings = {k: findings.get(k, True) for k in FINDINGS_SOURCES}
    sources, any_detail, policies, preset_flows = set(), False, None, []
    for i, r in enumerate(rules):
        unknown = set(r) - {"preset", "policies", "enabled", "options", "sources", "notify"}
        if unknown:
            fail("stack.jsonnet: Rules[%d]: unknown key(s) %s" % (i, ", ".join(sorted(unknown))))
        if r.get("enabled", True) is False:
            continue
        if "preset" in r:
            if r["preset"] not in PRESET_SOURCES:
                fail("stack.jsonnet: Rules[%d]: no preset %r (presets: %s)" % (i, r["preset"], ", ".join(PRESET_SOURCES)))
            sources.update(PRESET_SOURCES[r["preset"]])
            if r.get("notify") is not None:
                if not isinstance(r["notify"], str):
                    fail("stack.jsonnet: Rules[%d].notify is a notifier's name (of Notifiers)" % i)
                preset_flows.append({"preset": r["preset"], "notify": r["notify"]})
        elif "policies" in r:
            if "notify" in r:
                fail("stack.jsonnet: Rules[%d].notify: only for presets (give a Rego rule's alerts a flow in Flows)" % i)
            if policies is not None:
                fail("stack.jsonnet: Rules[%d]: on AWS, one directory of Rego rules (it is built into event-router)" % i)
            if not r.get("sources"):
                fail("stack.jsonnet: Rules[%d]: a Rego rule needs sources (the EventBridge sources of its events, e.g. ['aws.s3'])" % i)
            path = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(stack_path)), r["policies"]))
            if not os.path.isdir(path) or not any(f.endswith(".rego") for f in os.listdir(path)):
                fail("stack.jsonnet: Rules[%d]: policies %r is not a directory of .rego files" % (i, r["policies"]))
            policies = path
            for src in r["sources"]:
                sources.add((src, ""))
            any_detail = True
        else:
            fail("stack.jsonnet: Rules[%d] needs preset or policies" % i)
    for name, on in findings.items():
        if on:
            sources.add(FINDINGS_SOURCES[name])
    config = json.dumps({"rules": rules, "findings": findings}, separators=(",", ":"), sort_keys=True)
    detail_types = "" if any_detail else ",".join(sorted({d for _, d in sources}))
    return config, ",".join(sorted({s for s, _ in sources})), detail_types, policies, preset_flows


def deepalert_cli():
    """The `deepalert` command that checks flows: $DEEPALERT_CLI, or built from this tree."""
    if os.environ.get("DEEPALERT_CLI"):
        return [os.environ["DEEPALERT_CLI"]]
    return ["cargo", "run", "--quiet", "--manifest-path", os.path.join(ROOT, "Cargo.toml"),
            "-p", "deepalert-cli", "--bin", "deepalert", "--"]


def partition_of(region):
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def flows_parameters(stack, stack_name, region, preset_flows):
    """Flows, Notifiers and FlowSecrets of stack.jsonnet -> the FlowsConfig, FlowActions,
    FlowSecretArns and FlowTopicArns parameters. The document is checked by `deepalert
    flows check`, as the flow runner checks it at its start, which also works out the IAM
    actions its checks and remediations need."""
    flows = stack.pop("Flows", [])
    notifiers = stack.pop("Notifiers", [])
    secrets = stack.pop("FlowSecrets", {})
    if not isinstance(flows, list) or not all(isinstance(f, dict) for f in flows):
        fail("stack.jsonnet: Flows must be a list of flows ({name, steps, ...}; README, \"Responding\")")
    if not isinstance(notifiers, list) or not all(isinstance(n, dict) for n in notifiers):
        fail("stack.jsonnet: Notifiers must be a list of {name, builtin, options}")
    if not isinstance(secrets, dict) or not all(isinstance(v, str) for v in secrets.values()):
        fail("stack.jsonnet: FlowSecrets maps a secret's name to a Secrets Manager ARN or 'ssm:<parameter name>'")
    if not flows and not notifiers and not preset_flows:
        return {"FlowsConfig": "", "FlowActions": "", "FlowSecretArns": "", "FlowTopicArns": ""}
    document = {"flows": flows, "notifiers": notifiers, "secrets": secrets}
    if preset_flows:
        document["presets"] = preset_flows
    os.makedirs(os.path.join(ROOT, "target"), exist_ok=True)
    path = os.path.join(ROOT, "target", "flows-%s.json" % stack_name)
    with open(path, "w") as f:
        json.dump(document, f, indent=1)
    try:
        checked = subprocess.run(deepalert_cli() + ["flows", "check", path], capture_output=True, text=True)
    except OSError as e:
        fail("cannot run `deepalert flows check` (%s); set DEEPALERT_CLI to a deepalert binary" % e)
    if checked.returncode != 0:
        fail("stack.jsonnet: the flows are not sound: %s" % (checked.stderr.strip() or checked.stdout.strip()))
    actions = json.loads(checked.stdout)["iam_actions"]
    config = json.dumps(document, separators=(",", ":"), sort_keys=True)
    if len(config.encode()) > FLOWS_CONFIG_LIMIT:
        fail("stack.jsonnet: Flows, Notifiers and FlowSecrets take %d bytes as JSON; at most %d fit in a "
             "Lambda's environment. Shorten templates, or move long ones into fewer steps."
             % (len(config.encode()), FLOWS_CONFIG_LIMIT))
    arns = []
    for name, at in sorted(secrets.items()):
        if at.startswith("ssm:"):
            parameter = at[len("ssm:"):].lstrip("/")
            arns.append("arn:%s:ssm:%s:*:parameter/%s" % (partition_of(region), region, parameter))
        elif at.startswith("arn:") and ":secretsmanager:" in at:
            # GetSecretValue is granted on the ARN and the versions suffix AWS appends.
            arns.append(at if at.endswith("*") else at + "*")
        else:
            fail("stack.jsonnet: FlowSecrets.%s is %r: a Secrets Manager ARN or 'ssm:<parameter name>'" % (name, at))
    topics = sorted({n.get("options", {}).get("sns_topic_arn") for n in notifiers
                     if n.get("builtin") == "email" and n.get("options", {}).get("sns_topic_arn")})
    return {"FlowsConfig": config, "FlowActions": ",".join(actions),
            "FlowSecretArns": ",".join(arns), "FlowTopicArns": ",".join(topics)}


def plan(deploy_path, stack_path, template, builtins=False):
    deploy = render(deploy_path)
    stack = render(stack_path)
    stack_file = os.path.basename(stack_path)
    template_file = os.path.basename(template)
    for field, kind in DEPLOY_FIELDS.items():
        if not isinstance(deploy.get(field), kind):
            fail("deploy.jsonnet: %s must be a %s" % (field, kind.__name__))
    unknown = set(deploy) - set(DEPLOY_FIELDS) - set(OPTIONAL_DEPLOY_FIELDS)
    if unknown:
        fail("deploy.jsonnet: unknown field(s) %s (known: %s)" % (", ".join(sorted(unknown)), ", ".join(list(DEPLOY_FIELDS) + list(OPTIONAL_DEPLOY_FIELDS))))
    for field, default in OPTIONAL_DEPLOY_FIELDS.items():
        deploy.setdefault(field, default)
    if not isinstance(deploy["Regions"], list) or not all(isinstance(r, str) for r in deploy["Regions"]):
        fail("deploy.jsonnet: Regions must be a list of region names")
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
    rules_config = event_sources = event_detail_types = None
    flow_params = {}
    if not builtins:
        for key in DERIVED_PARAMETERS & set(stack):
            fail("%s: %s is written from Rules and Findings, or Flows, Notifiers and FlowSecrets; set those instead" % (stack_file, key))
        rules_config, event_sources, event_detail_types, rule_policies, preset_flows = rules_parameters(stack, stack_path)
        flow_params = flows_parameters(stack, stack_name, deploy["Region"], preset_flows)
        if rule_policies:
            build_env["DEEPALERT_RULE_POLICY_DIR"] = rule_policies
    policies = stack.pop("ReviewerPolicies", "") if not builtins else ""
    if not isinstance(policies, str):
        fail("stack.jsonnet: ReviewerPolicies must be a string (a directory), got %r" % (policies,))
    if policies:
        path = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(stack_path)), policies))
        if not os.path.isdir(path) or not any(f.endswith(".rego") for f in os.listdir(path)):
            fail("stack.jsonnet: ReviewerPolicies %r is not a directory of .rego files" % policies)
        build_env["DEEPALERT_POLICY_DIR"] = path
    for key, value in sorted(stack.items()):
        if key not in params:
            fail("%s: %s is not a parameter of %s (parameters: %s)" % (stack_file, key, template_file, ", ".join(sorted(params))))
        if params[key]["type"] == "Number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            fail("%s: %s must be a number, got %r" % (stack_file, key, value))
        if params[key]["type"] == "CommaDelimitedList":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                fail("%s: %s must be a list of strings, got %r" % (stack_file, key, value))
            stack[key] = ",".join(value)
        elif params[key]["type"] == "String" and not isinstance(value, str):
            fail("%s: %s must be a string, got %r" % (stack_file, key, value))
    if rules_config is not None:
        stack.update({"RulesConfig": rules_config, "EventSources": event_sources, "EventDetailTypes": event_detail_types})
    stack.update(flow_params)
    missing = [k for k, p in params.items() if k not in stack and p["default"] is None]
    if missing:
        fail("%s: set %s (parameters of %s without a default)" % (stack_file, ", ".join(missing), template_file))
    # Every parameter, always: what is left out takes the template's default, not the
    # value of the previous deploy.
    overrides = ["%s=%s" % (key, stack[key] if key in stack else p["default"]) for key, p in sorted(params.items())]
    packaged = os.path.join(ROOT, "target", "packaged-%s.json" % stack_name)
    # `env VAR=… make …`: one argv, run as it is printed.
    build = ["env"] + [f"{k}={v}" for k, v in build_env.items()] + ["make", "-C", ROOT, "build", "LAMBDAS=" + " ".join(lambdas)]
    forwarders = []
    if not builtins:
        for region in deploy["Regions"]:
            if region == deploy["Region"]:
                continue
            forwarders.append(
                ["aws", "cloudformation", "deploy", "--region", region,
                 "--template-file", os.path.join(ROOT, "forwarder.yaml"),
                 "--stack-name", stack_name + "-forwarder",
                 "--capabilities", "CAPABILITY_IAM", "--no-fail-on-empty-changeset",
                 "--parameter-overrides", "MainRegion=" + deploy["Region"],
                 "EventSources=" + event_sources, "EventDetailTypes=" + event_detail_types])
    return deploy, stack_name, lambdas, packaged, forwarders, [
        build,
        ["aws", "sts", "get-caller-identity", "--region", deploy["Region"]],
        ["aws", "cloudformation", "package", "--region", deploy["Region"], "--use-json",
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
    parser.add_argument("--verify-packaged")
    parser.add_argument("--check-zip")
    parser.add_argument("--arch", choices=sorted(ELF_MACHINES))
    args = parser.parse_args()
    if args.check_zip:
        why = check_zip(args.check_zip, args.arch)
        if why:
            fail(why)
        print("%s: bootstrap%s ok" % (args.check_zip, " for " + args.arch if args.arch else ""))
        return
    stack = args.stack or os.path.join(ROOT, "builtins.jsonnet" if args.builtins else "stack.jsonnet")
    template = os.path.abspath(args.template or os.path.join(
        ROOT, "examples/aws/builtins.yaml" if args.builtins else "template.yaml"))
    if args.verify_packaged:
        verify_packaged(template, args.verify_packaged)
        print("%s: every function's code is its own zip with bootstrap" % args.verify_packaged)
        return
    deploy, stack_name, lambdas, packaged, forwarders, commands = plan(args.deploy, stack, template, args.builtins)
    if args.dry_run:
        # Quoted as a shell would need them: detail-types have spaces.
        for c in commands + forwarders:
            print(shlex.join(c))
        return
    if not shutil.which("aws"):
        fail("the AWS CLI is missing: run `make deploy` (it installs it into .venv)")
    check = subprocess.run(commands[1], capture_output=True, text=True)
    if check.returncode != 0:
        fail("no usable AWS credentials for %s (aws sts get-caller-identity said: %s).\n"
             "Configure them (aws configure, AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and retry."
             % (deploy["Region"], check.stderr.strip() or check.stdout.strip()))
    print("+ " + shlex.join(commands[0]), flush=True)
    if subprocess.run(commands[0]).returncode != 0:
        fail("make build failed")
    missing = [f for f in lambdas if not os.path.exists(os.path.join(ROOT, "target", "lambda", f, "bootstrap.zip"))]
    if missing:
        fail("no zip for %s after make build" % ", ".join(missing))
    function_code(template)  # every function names its own zip, before anything is uploaded
    package, deploy_cmd = commands[2], commands[3]
    print("+ " + shlex.join(package), flush=True)
    if subprocess.run(package).returncode != 0:
        fail("aws cloudformation package failed")
    verify_packaged(template, packaged)
    print("+ " + shlex.join(deploy_cmd), flush=True)
    if subprocess.run(deploy_cmd).returncode != 0:
        fail("aws cloudformation deploy failed")
    for c in forwarders:
        print("+ " + shlex.join(c), flush=True)
        if subprocess.run(c).returncode != 0:
            fail("deploying the forwarder in %s failed" % c[c.index("--region") + 1])
    print("deployed stack %s in %s" % (stack_name, deploy["Region"]))


if __name__ == "__main__":
    main()
