#!/usr/bin/env python3
"""`make deploy`: render deploy.jsonnet and stack.jsonnet, check everything AWS would
refuse, then build, package and deploy template.yaml with the AWS CLI. `make
deploy-builtins` (--builtins): the same for the built-in plug-ins' stack,
examples/aws/builtins.yaml with builtins.jsonnet, deployed as <StackName>-builtins next to
the deepalert stack. `make remove` (--remove): delete the stacks, saying what is kept.

Checked before CloudFormation is called, each with a message saying what to change:
- the stack name: CloudFormation's pattern and length, and every name the templates derive
  from it (a state machine's 80 characters, …);
- KmsKey: none, create, or a key ARN in the stack's region (an alias is resolved to its
  key's ARN with `aws kms describe-key`, said so: key policies and grants name keys);
- every parameter value fits CloudFormation's 4,096 bytes, and every function's
  environment Lambda's 4 KB (its biggest variables named when it does not);
- Regions: one partition; rules that read global events (IAM, STS, console sign-in:
  CloudTrail delivers them in us-east-1 only, cn-north-1 / us-gov-west-1 in the other
  partitions) get a forwarder in that region, said so.

Documents that can grow — the rules and the flows — do not go into parameters or the
environment: they are files added to the zips of the functions whose environment names
them (`RULES_CONFIG_FILE`, `FLOWS_CONFIG_FILE`), so code and configuration are deployed as
one version. The packaged template (over 51,200 bytes) goes through the code bucket
(`--s3-bucket`); the forwarders, in other regions than the bucket, are small enough to go
inline (checked).

Every template parameter is passed on every deploy: the value from the stack file, or the
template's default (left out, `aws cloudformation deploy` would keep a parameter's previous
value on an update).

usage: deploy.py [--dry-run] [--builtins] [--no-build] [--lambda-dir DIR]
                 [--deploy FILE] [--stack FILE] [--template FILE]
       deploy.py --remove [--yes] [--dry-run] [--deploy FILE] [--stack FILE]
       deploy.py --verify-packaged PACKAGED.json [--template FILE]
       deploy.py --check-zip ZIP [--arch arm64|x86_64]
  --dry-run      print the commands and run nothing (the documents are written, and named)
  --builtins     deploy the built-ins' stack (defaults: builtins.jsonnet, examples/aws/builtins.yaml)
  --no-build     use the zips already in --lambda-dir instead of running `make build`
  --lambda-dir   where the functions' zips are (<name>/bootstrap.zip; default target/lambda)
  --remove       delete the built-ins stack, the forwarders and the stack (asks first; --yes: don't)
  --deploy/--stack/--template  other files (default: deploy.jsonnet, stack.jsonnet, template.yaml)
  --verify-packaged  check a template packaged with `--use-json` against its source template
  --check-zip    check that a Lambda zip holds an executable `bootstrap` for the architecture
Environment: DEEPALERT_DEPLOY_DIR (default target/deploy) holds the staged zips, template
and documents; DEEPALERT_CLI is the `deepalert` binary that checks flows (default: built).
"""
import argparse
import hashlib
import json
import os
import re
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
BUILTIN_LAMBDAS = ["builtin"]
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
# Services whose CloudTrail events reach EventBridge in one region of the partition only.
GLOBAL_SOURCES = {"aws.iam", "aws.sts", "aws.signin", "aws.organizations"}
GLOBAL_REGION = {"aws": "us-east-1", "aws-cn": "cn-north-1", "aws-us-gov": "us-gov-west-1"}
# Template parameters written from Rules, Findings, Flows, Notifiers and FlowSecrets.
DERIVED_PARAMETERS = {"EventSources", "EventDetailTypes", "FlowActions", "FlowSecretArns", "FlowTopicArns"}
# Parameters deploy.py used to write, now documents in the zips: a stack file setting one
# is told so.
FORMER_PARAMETERS = {"RulesConfig": "Rules and Findings", "FlowsConfig": "Flows, Notifiers and FlowSecrets"}
# Environment variables naming a document in the function's zip, and which document.
DOCUMENT_VARIABLES = {"RULES_CONFIG_FILE": "rules", "FLOWS_CONFIG_FILE": "flows"}
# AWS's limits.
TEMPLATE_BODY_LIMIT = 51200
PARAMETER_VALUE_LIMIT = 4096
ENVIRONMENT_LIMIT = 4096
STACK_NAME_LIMIT = 128
STACK_NAME_PATTERN = r"[A-Za-z][A-Za-z0-9-]*"
NAME_LIMITS = {
    "AWS::Serverless::Function": ("FunctionName", 64),
    "AWS::Lambda::Function": ("FunctionName", 64),
    "AWS::SQS::Queue": ("QueueName", 80),
    "AWS::SNS::Topic": ("TopicName", 256),
    "AWS::IAM::Role": ("RoleName", 64),
    "AWS::DynamoDB::Table": ("TableName", 255),
    "AWS::StepFunctions::StateMachine": ("StateMachineName", 80),
    "AWS::Events::Rule": ("Name", 64),
    "AWS::Logs::LogGroup": ("LogGroupName", 512),
    "AWS::CloudWatch::Alarm": ("AlarmName", 255),
}
KEY_ARN = r"arn:(aws|aws-cn|aws-us-gov):kms:([a-z0-9-]+):([0-9]{12}):key/([A-Za-z0-9-]+)"
ALIAS = r"(arn:(aws|aws-cn|aws-us-gov):kms:([a-z0-9-]+):([0-9]{12}):)?alias/[A-Za-z0-9/_-]+"


def fail(msg):
    print("deploy: " + msg, file=sys.stderr)
    sys.exit(1)


def say(msg):
    print("deploy: " + msg, flush=True)


def partition_of(region):
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def url_suffix(region):
    return "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"


# ---- files ----

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


def functions_of(template):
    return {logical: r for logical, r in (template.get("Resources") or {}).items()
            if r.get("Type") == "AWS::Serverless::Function"}


def function_code(template_path):
    """Function logical id -> the zip its own CodeUri names (absolute path), as
    `aws cloudformation package` reads it: per resource, never from Globals."""
    t = load_template(template_path)
    base = os.path.dirname(os.path.abspath(template_path))
    out = {}
    for logical, r in functions_of(t).items():
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


# ---- names AWS limits ----

def check_stack_name(name, template, template_file, suffixes=()):
    """The stack name, and every name the template derives from it, within AWS's limits."""
    if not re.fullmatch(STACK_NAME_PATTERN, name):
        fail("deploy.jsonnet: StackName %r is not a CloudFormation stack name (a letter, then letters, "
             "digits and hyphens)" % name)
    for suffix in suffixes:
        if len(name + suffix) > STACK_NAME_LIMIT:
            fail("deploy.jsonnet: StackName %r (%d characters) is too long: the stack %s%s must fit in %d "
                 "characters, so StackName may have at most %d"
                 % (name, len(name), name, suffix, STACK_NAME_LIMIT, STACK_NAME_LIMIT - len(suffix)))
    if len(name) > STACK_NAME_LIMIT:
        fail("deploy.jsonnet: StackName %r is %d characters; CloudFormation allows %d" % (name, len(name), STACK_NAME_LIMIT))
    for logical, r in (template.get("Resources") or {}).items():
        key, limit = NAME_LIMITS.get(r.get("Type"), (None, None))
        value = (r.get("Properties") or {}).get(key) if key else None
        if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
            pattern = value["Fn::Sub"]
            if "${AWS::StackName}" not in pattern:
                continue
            rest = len(re.sub(r"\$\{AWS::StackName\}", "", re.sub(r"\$\{AWS::(Region|AccountId|Partition)\}", "x" * 14, pattern)))
            count = pattern.count("${AWS::StackName}")
            if rest + count * len(name) > limit:
                fail("deploy.jsonnet: StackName %r (%d characters) is too long for %s: %s %s of %s is %r and must fit "
                     "in %d characters, so StackName may have at most %d"
                     % (name, len(name), template_file, logical, key, r["Type"], pattern, limit, (limit - rest) // count))


# ---- the functions' environment, measured before Lambda measures it ----

class Estimator:
    """A function's environment as CloudFormation will resolve it, with each resource's
    name or ARN at its longest (what AWS generates for it, or its explicit name)."""

    def __init__(self, template, params, stack_name, region):
        self.resources = template.get("Resources") or {}
        self.conditions_src = template.get("Conditions") or {}
        self.params = params
        self.stack = stack_name
        self.region = region
        self.partition = partition_of(region)
        self.conditions = {}

    def name(self, logical):
        r = self.resources[logical]
        key, limit = NAME_LIMITS.get(r.get("Type"), (None, 64))
        explicit = (r.get("Properties") or {}).get(key) if key else None
        if explicit is not None:
            return self.value(explicit)
        return ("%s-%s-%s" % (self.stack, logical, "X" * 12))[:limit or 64]

    def arn(self, service, resource):
        return "arn:%s:%s:%s:%s:%s" % (self.partition, service, self.region, "0" * 12, resource)

    def ref(self, logical):
        if logical in self.params:
            v = self.params[logical]
            return ",".join(v) if isinstance(v, list) else str(v)
        pseudo = {"AWS::StackName": self.stack, "AWS::Region": self.region, "AWS::AccountId": "0" * 12,
                  "AWS::Partition": self.partition, "AWS::URLSuffix": url_suffix(self.region), "AWS::NoValue": ""}
        if logical in pseudo:
            return pseudo[logical]
        if logical not in self.resources:
            return "x" * 64
        kind, name = self.resources[logical]["Type"], self.name(logical)
        return {
            "AWS::SNS::Topic": self.arn("sns", name),
            "AWS::SQS::Queue": "https://sqs.%s.%s/%s/%s" % (self.region, url_suffix(self.region), "0" * 12, name),
            "AWS::StepFunctions::StateMachine": self.arn("states", "stateMachine:" + name),
            "AWS::KMS::Key": "0" * 36,
        }.get(kind, name)

    def getatt(self, logical, attr):
        if logical not in self.resources:
            return "x" * 64
        kind, name = self.resources[logical]["Type"], self.name(logical)
        if attr == "Arn":
            return {
                "AWS::SQS::Queue": self.arn("sqs", name),
                "AWS::SNS::Topic": self.arn("sns", name),
                "AWS::Serverless::Function": self.arn("lambda", "function:" + name),
                "AWS::DynamoDB::Table": self.arn("dynamodb", "table/" + name),
                "AWS::KMS::Key": self.arn("kms", "key/" + "0" * 36),
                "AWS::StepFunctions::StateMachine": self.arn("states", "stateMachine:" + name),
            }.get(kind, self.arn("x", name))
        return name

    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = None  # a loop would be the template's fault; not ours to find
            self.conditions[name] = bool(self.value(self.conditions_src[name], truth=True))
        return self.conditions[name]

    def value(self, v, truth=False):
        if isinstance(v, list):
            return [self.value(x, truth) for x in v]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            (k, arg), = v.items()
            if k == "Ref":
                return self.ref(arg)
            if k == "Fn::GetAtt":
                logical, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.getatt(logical, attr)
            if k == "Fn::Sub":
                text, variables = (arg[0], {n: self.value(x) for n, x in arg[1].items()}) if isinstance(arg, list) else (arg, {})

                def one(m):
                    expr = m.group(1)
                    if expr in variables:
                        return str(variables[expr])
                    if "." in expr:
                        return str(self.getatt(*expr.split(".", 1)))
                    return str(self.ref(expr))
                return re.sub(r"\$\{([^}!]+)\}", one, text)
            if k == "Fn::If":
                name, yes, no = arg
                if name in self.conditions_src:
                    return self.value(yes if self.condition(name) else no, truth)
                a, b = self.value(yes), self.value(no)
                return a if len(json.dumps(a)) >= len(json.dumps(b)) else b
            if k == "Fn::Equals":
                a, b = [self.value(x) for x in arg]
                return str(a) == str(b)
            if k == "Fn::Not":
                return not self.value(arg[0], True)
            if k == "Fn::And":
                return all(self.value(x, True) for x in arg)
            if k == "Fn::Or":
                return any(self.value(x, True) for x in arg)
            if k == "Condition":
                return self.condition(arg)
            if k == "Fn::Join":
                sep, items = arg
                return sep.join(str(x) for x in self.value(items))
            if k == "Fn::Select":
                idx, items = arg
                items = self.value(items)
                return items[int(self.value(idx))] if isinstance(items, list) and len(items) > int(self.value(idx)) else "x" * 80
            if k == "Fn::Split":
                sep, text = arg
                return str(self.value(text)).split(sep)
            if k == "Fn::ImportValue":
                # Another stack's output: a queue URL or ARN at its longest.
                return "x" * 160
        return {key: self.value(x) for key, x in v.items()}


def check_environments(template, params, stack_name, region, template_file):
    """Refuses a function whose environment, as deployed, would exceed Lambda's 4 KB.
    Returns function -> measured bytes."""
    est = Estimator(template, params, stack_name, region)
    glob = (((template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}).get("Variables") or {}
    sizes = {}
    for logical, r in functions_of(template).items():
        variables = dict(glob)
        variables.update(((r.get("Properties") or {}).get("Environment") or {}).get("Variables") or {})
        values = {k: str(est.value(v)) for k, v in variables.items()}
        # Lambda measures the variables as a JSON object (its error message shows it so).
        size = len(json.dumps(values, separators=(",", ":")).encode("utf-8"))
        sizes[logical] = size
        if size > ENVIRONMENT_LIMIT:
            biggest = sorted(values, key=lambda k: -(len(k) + len(values[k])))[:3]
            fail("%s: %s's environment would take %d bytes; Lambda allows %d in all. Biggest: %s"
                 % (template_file, logical, size, ENVIRONMENT_LIMIT,
                    ", ".join("%s (%d bytes)" % (k, len(k) + len(values[k])) for k in biggest)))
    return sizes


# ---- KMS ----

def kms_key(value, region, aws_env, dry_run):
    """KmsKey as the template needs it: none, create, or the key's ARN."""
    if value in ("none", "create"):
        return value
    m = re.fullmatch(KEY_ARN, value)
    if m:
        if m.group(1) != partition_of(region) or m.group(2) != region:
            fail("stack.jsonnet: KmsKey %r is a key in %s (%s); the stack is in %s: SNS, SQS and DynamoDB "
                 "take a key of their own region" % (value, m.group(2), m.group(1), region))
        return value
    if re.fullmatch(ALIAS, value):
        if dry_run:
            say("KmsKey %r is an alias: `make deploy` resolves it to its key's ARN (aws kms describe-key), "
                "because key policies, grants and kms:Decrypt name keys, not aliases" % value)
            return value
        out = subprocess.run(["aws", "kms", "describe-key", "--region", region, "--key-id", value, "--output", "json"],
                             capture_output=True, text=True, env=aws_env)
        if out.returncode != 0:
            fail("stack.jsonnet: KmsKey %r: cannot resolve the alias in %s (aws kms describe-key said: %s)"
                 % (value, region, out.stderr.strip() or out.stdout.strip()))
        meta = json.loads(out.stdout)["KeyMetadata"]
        if meta.get("KeyState", "Enabled") != "Enabled":
            fail("stack.jsonnet: KmsKey %r is key %s, which is %s" % (value, meta["Arn"], meta.get("KeyState")))
        say("KmsKey %r is the key %s: the stack gets the key's ARN (key policies, grants and "
            "kms:Decrypt name keys, not aliases)" % (value, meta["Arn"]))
        return kms_key(meta["Arn"], region, aws_env, dry_run)
    fail("stack.jsonnet: KmsKey must be 'none', 'create', or a KMS key in %s: its ARN "
         "(arn:%s:kms:%s:ACCOUNT:key/ID) or an alias (alias/NAME), got %r" % (region, partition_of(region), region, value))


# ---- rules and flows: documents for the zips ----

def rules_document(stack, stack_path):
    """Rules and Findings of stack.jsonnet -> (the rules document, EventSources,
    EventDetailTypes, the directory of Rego rules to build in or None, the presets whose
    default flows notify someone, the rules that read global events: (index, name, sources))."""
    rules = stack.pop("Rules", [])
    findings = stack.pop("Findings", {})
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        fail("stack.jsonnet: Rules must be a list of objects ({preset: ...} or {policies: ...})")
    if not isinstance(findings, dict) or set(findings) - set(FINDINGS_SOURCES) or not all(isinstance(v, bool) for v in findings.values()):
        fail("stack.jsonnet: Findings is {guardduty: true|false, securityhub: true|false}")
    findings = {k: findings.get(k, True) for k in FINDINGS_SOURCES}
    sources, any_detail, policies, preset_flows, global_rules = set(), False, None, [], []
    for i, r in enumerate(rules):
        unknown = set(r) - {"preset", "policies", "enabled", "options", "sources", "notify"}
        if unknown:
            fail("stack.jsonnet: Rules[%d]: unknown key(s) %s" % (i, ", ".join(sorted(unknown))))
        if r.get("enabled", True) is False:
            continue
        if "preset" in r:
            if r["preset"] not in PRESET_SOURCES:
                fail("stack.jsonnet: Rules[%d]: no preset %r (presets: %s)" % (i, r["preset"], ", ".join(PRESET_SOURCES)))
            mine = {s for s, _ in PRESET_SOURCES[r["preset"]]}
            sources.update(PRESET_SOURCES[r["preset"]])
            if r.get("notify") is not None:
                if not isinstance(r["notify"], str):
                    fail("stack.jsonnet: Rules[%d].notify is a notifier's name (of Notifiers)" % i)
                preset_flows.append({"preset": r["preset"], "notify": r["notify"]})
            name = r["preset"]
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
            mine = set(r["sources"])
            for src in r["sources"]:
                sources.add((src, ""))
            any_detail = True
            name = r["policies"]
        else:
            fail("stack.jsonnet: Rules[%d] needs preset or policies" % i)
        if mine & GLOBAL_SOURCES:
            global_rules.append((i, name, sorted(mine & GLOBAL_SOURCES)))
    for name, on in findings.items():
        if on:
            sources.add(FINDINGS_SOURCES[name])
    document = json.dumps({"rules": rules, "findings": findings}, separators=(",", ":"), sort_keys=True)
    detail_types = "" if any_detail else ",".join(sorted({d for _, d in sources}))
    # What a forwarder added for global events alone forwards: those sources only.
    global_pairs = {(s, d) for s, d in sources if s in GLOBAL_SOURCES}
    global_pattern = (",".join(sorted({s for s, _ in global_pairs})),
                      "" if any(d == "" for _, d in global_pairs) else ",".join(sorted({d for _, d in global_pairs})))
    return (document, ",".join(sorted({s for s, _ in sources})), detail_types, policies, preset_flows,
            (global_rules, global_pattern))


def deepalert_cli():
    """The `deepalert` command that checks flows: $DEEPALERT_CLI, or built from this tree."""
    if os.environ.get("DEEPALERT_CLI"):
        return [os.environ["DEEPALERT_CLI"]]
    return ["cargo", "run", "--quiet", "--manifest-path", os.path.join(ROOT, "Cargo.toml"),
            "-p", "deepalert-cli", "--bin", "deepalert", "--"]


def flows_document(stack, staging, region, preset_flows):
    """Flows, Notifiers and FlowSecrets of stack.jsonnet -> (the flows document, the
    FlowActions, FlowSecretArns and FlowTopicArns parameters). The document is checked by
    `deepalert flows check`, as the flow runner checks it at its start, which also works out
    the IAM actions its checks and remediations need."""
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
        return "", {"FlowActions": "", "FlowSecretArns": "", "FlowTopicArns": ""}
    document = {"flows": flows, "notifiers": notifiers, "secrets": secrets}
    if preset_flows:
        document["presets"] = preset_flows
    path = os.path.join(staging, "flows-to-check.json")
    with open(path, "w") as f:
        json.dump(document, f, indent=1)
    try:
        checked = subprocess.run(deepalert_cli() + ["flows", "check", path], capture_output=True, text=True)
    except OSError as e:
        fail("cannot run `deepalert flows check` (%s); set DEEPALERT_CLI to a deepalert binary" % e)
    if checked.returncode != 0:
        fail("stack.jsonnet: the flows are not sound: %s" % (checked.stderr.strip() or checked.stdout.strip()))
    actions = json.loads(checked.stdout)["iam_actions"]
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
    text = json.dumps(document, separators=(",", ":"), sort_keys=True)
    return text, {"FlowActions": ",".join(actions), "FlowSecretArns": ",".join(arns), "FlowTopicArns": ",".join(topics)}


# ---- staging: the zips with their documents, and a template that points at them ----

def zip_with(src, dst, files):
    """`src` with `files` (name -> bytes) added, written to `dst`: the same bytes for the same
    inputs (fixed times), so an unchanged function is not updated."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    tmp = dst + ".tmp"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename not in files:
                zout.writestr(info, zin.read(info))
        for name, data in sorted(files.items()):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(info, data)
    os.replace(tmp, dst)


CODE_URI = re.compile(r"^(\s*CodeUri:\s*)(\S*target/lambda/([^/\s]+)/bootstrap\.zip)\s*$", re.M)


def documents_of(template, documents):
    """Function logical id -> {path in its zip: document name}, from the variables of its
    environment that name a document."""
    out = {}
    for logical, r in functions_of(template).items():
        variables = ((r.get("Properties") or {}).get("Environment") or {}).get("Variables") or {}
        wanted = {v: DOCUMENT_VARIABLES[k] for k, v in variables.items() if k in DOCUMENT_VARIABLES}
        for path, doc in wanted.items():
            if not isinstance(path, str) or path.startswith("/") or ".." in path.split("/"):
                fail("%s: %s names its document %r: a path inside the zip" % (logical, doc, path))
            if doc not in documents:
                fail("%s reads the %s document, which this deploy does not write" % (logical, doc))
        if wanted:
            out[logical] = wanted
    return out


def write_documents(staging, documents, wanted, binaries):
    """Each document into the staging directory; prints which functions' zips get it."""
    paths = {}
    for name, text in documents.items():
        path = os.path.join(staging, "%s.json" % name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        paths[name] = path
        users = sorted({binaries[l] for l, w in wanted.items() if name in w.values()})
        inside = sorted({p for w in wanted.values() for p, d in w.items() if d == name})
        if users:
            print("# document %s = %s (%d bytes; in the zips of: %s)"
                  % (",".join(inside), path, len(text.encode("utf-8")), ", ".join(users)))
    return paths


def stage(template_path, lambda_dir, staging, documents, wanted, binaries):
    """The zips (with their documents) and a copy of the template whose CodeUris name
    them, ready for `aws cloudformation package`. Returns the staged template's path."""
    with open(template_path, encoding="utf-8") as f:
        text = f.read()
    # A zip per binary: functions that share a binary must read the same documents.
    by_binary = {}
    for logical, binary in sorted(binaries.items()):
        paths = wanted.get(logical, {})
        if binary in by_binary and by_binary[binary] != paths:
            fail("functions of the binary %s read different documents; give each its own binary" % binary)
        by_binary[binary] = paths
    for binary in sorted(by_binary):
        why = check_zip(os.path.join(lambda_dir, binary, "bootstrap.zip"))
        if why:
            fail("%s (run `make build`, or give --lambda-dir the directory of the zips)" % why)
    staged_zips = {}
    for binary, paths in by_binary.items():
        if not paths:
            continue
        files = {inside: documents[doc].encode("utf-8") for inside, doc in paths.items()}
        dst = os.path.join(staging, "lambda", binary, "bootstrap.zip")
        zip_with(os.path.join(lambda_dir, binary, "bootstrap.zip"), dst, files)
        staged_zips[binary] = dst

    def point(m):
        binary = m.group(3)
        zip_path = staged_zips.get(binary) or os.path.abspath(os.path.join(lambda_dir, binary, "bootstrap.zip"))
        return m.group(1) + zip_path
    staged = os.path.join(staging, "template.yaml")
    with open(staged, "w", encoding="utf-8") as f:
        f.write(CODE_URI.sub(point, text))
    return staged


def binaries_of(template, template_file):
    out = {}
    for logical, r in functions_of(template).items():
        uri = (r.get("Properties") or {}).get("CodeUri") or ""
        m = re.search(r"target/lambda/([^/\s]+)/bootstrap\.zip$", uri)
        if not m:
            fail("%s: %s: CodeUri %r is not target/lambda/<binary>/bootstrap.zip" % (template_file, logical, uri))
        out[logical] = m.group(1)
    return out


# ---- the plan ----

class Plan:
    pass


def aws_environment():
    return dict(os.environ)


def plan(args, builtins=False):
    deploy_path, stack_path, template = args.deploy, args.stack, args.template
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
    region = deploy["Region"]
    if not re.fullmatch(r"[a-z]{2}(-gov)?-[a-z]+-[0-9]+", region):
        fail("deploy.jsonnet: Region %r is not an AWS region name (like eu-west-1)" % region)
    partition = partition_of(region)
    if not isinstance(deploy["Regions"], list) or not all(isinstance(r, str) for r in deploy["Regions"]):
        fail("deploy.jsonnet: Regions must be a list of region names")
    for other in deploy["Regions"]:
        if not re.fullmatch(r"[a-z]{2}(-gov)?-[a-z]+-[0-9]+", other):
            fail("deploy.jsonnet: Regions: %r is not an AWS region name" % other)
        if partition_of(other) != partition:
            fail("deploy.jsonnet: Regions: %s is in the %s partition and %s in %s; EventBridge forwards within "
                 "a partition only" % (other, partition_of(other), region, partition))
    if deploy["CodeS3Bucket"].startswith("REPLACE-"):
        fail("deploy.jsonnet: set CodeS3Bucket to an S3 bucket of yours in %s" % region)
    t = load_template(template)
    params = template_parameters(template)
    stack_name = deploy["StackName"]
    p = Plan()
    p.lambdas = LAMBDAS
    if builtins:
        check_stack_name(stack_name, {}, template_file, ("-builtins",))
        stack_name = deploy["StackName"] + "-builtins"
        p.lambdas = BUILTIN_LAMBDAS
        # The built-ins import the deepalert stack's exports.
        if "DeepalertStack" in params:
            stack.setdefault("DeepalertStack", deploy["StackName"])
    else:
        check_stack_name(stack_name, t, template_file, ("-forwarder", "-builtins"))
        with open(os.path.join(ROOT, "forwarder.yaml"), encoding="utf-8") as f:
            forwarder = f.read()
        check_stack_name(stack_name + "-forwarder", load_template(os.path.join(ROOT, "forwarder.yaml")), "forwarder.yaml")
        if len(forwarder.encode("utf-8")) > TEMPLATE_BODY_LIMIT:
            fail("forwarder.yaml is %d bytes: CloudFormation takes %d inline, and the code bucket is in %s, not the "
                 "forwarders' regions" % (len(forwarder.encode()), TEMPLATE_BODY_LIMIT, region))
    for key, value in sorted(stack.items()):
        if isinstance(value, str) and value.startswith("REPLACE-"):
            fail("%s: set %s (it is still %r)" % (stack_file, key, value))
    staging = os.path.join(os.environ.get("DEEPALERT_DEPLOY_DIR") or os.path.join(ROOT, "target", "deploy"), stack_name)
    os.makedirs(staging, exist_ok=True)
    build_env = {}
    documents = {}
    flow_params = {}
    rules_params = {}
    global_rules, global_pattern = [], ("", "")
    if not builtins:
        for key, written_from in FORMER_PARAMETERS.items():
            if key in stack:
                fail("%s: %s is written from %s (into the functions' zips); set those instead" % (stack_file, key, written_from))
        for key in DERIVED_PARAMETERS & set(stack):
            fail("%s: %s is written from Rules and Findings, or Flows, Notifiers and FlowSecrets; set those instead" % (stack_file, key))
        rules_doc, event_sources, event_detail_types, rule_policies, preset_flows, (global_rules, global_pattern) = \
            rules_document(stack, stack_path)
        documents["rules"] = rules_doc
        rules_params = {"EventSources": event_sources, "EventDetailTypes": event_detail_types}
        documents["flows"], flow_params = flows_document(stack, staging, region, preset_flows)
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
    if "KmsKey" in stack:
        stack["KmsKey"] = kms_key(stack["KmsKey"], region, aws_environment(), args.dry_run)
    if stack.get("TrailQueueArn") and not stack.get("TrailBucket"):
        fail("%s: TrailQueueArn is the queue of TrailBucket's notifications: set TrailBucket too "
             "(the event router reads the files from it)" % stack_file)
    stack.update(rules_params)
    stack.update(flow_params)
    missing = [k for k, p_ in params.items() if k not in stack and p_["default"] is None]
    if missing:
        fail("%s: set %s (parameters of %s without a default)" % (stack_file, ", ".join(missing), template_file))
    # Every parameter, always: what is left out takes the template's default, not the
    # value of the previous deploy.
    values = {key: str(stack[key]) if key in stack else p_["default"] for key, p_ in params.items()}
    for key, value in sorted(values.items()):
        if len(value.encode("utf-8")) > PARAMETER_VALUE_LIMIT:
            fail("%s: %s takes %d bytes; CloudFormation takes at most %d per parameter value"
                 % (stack_file, key, len(value.encode("utf-8")), PARAMETER_VALUE_LIMIT))
    list_values = {k: (v.split(",") if params[k]["type"] == "CommaDelimitedList" else v) for k, v in values.items()}
    p.env_sizes = check_environments(t, list_values, stack_name, region, template_file)
    binaries = binaries_of(t, template_file)
    wanted = documents_of(t, documents)
    p.document_paths = write_documents(staging, documents, wanted, binaries)
    overrides = ["%s=%s" % (key, values[key]) for key in sorted(values)]

    # Forwarders: Regions (every event the rules read), and the partition's global region
    # when a rule needs its events (those events only, unless it is in Regions).
    forwarder_regions = [(r, None) for r in deploy["Regions"] if r != region]
    global_region = GLOBAL_REGION[partition]
    if global_rules and region != global_region and global_region not in deploy["Regions"]:
        for i, name, srcs in global_rules:
            say("Rules[%d] (%s) reads %s events, which CloudTrail delivers in %s only: a forwarder of those "
                "events is deployed there (list '%s' in Regions in deploy.jsonnet to forward all the rules' events)"
                % (i, name, ", ".join(srcs), global_region, global_region))
        forwarder_regions.append((global_region, global_pattern))
    p.deploy, p.region, p.stack_name, p.staging = deploy, region, stack_name, staging
    p.template, p.template_file, p.binaries, p.wanted, p.documents = template, template_file, binaries, wanted, documents
    p.lambda_dir = os.path.abspath(args.lambda_dir)
    p.packaged = os.path.join(staging, "packaged.json")
    p.staged_template = os.path.join(staging, "template.yaml")
    p.build = None if args.no_build else (
        ["env"] + ["%s=%s" % kv for kv in build_env.items()] + ["make", "-C", ROOT, "build", "LAMBDAS=" + " ".join(p.lambdas)])
    p.build_env = build_env
    p.sts = ["aws", "sts", "get-caller-identity", "--region", region]
    p.package = ["aws", "cloudformation", "package", "--region", region, "--use-json",
                 "--template-file", p.staged_template,
                 "--s3-bucket", deploy["CodeS3Bucket"], "--s3-prefix", deploy["CodeS3Prefix"],
                 "--output-template-file", p.packaged]
    # The packaged template is over CloudFormation's 51,200 bytes inline: it goes through
    # the code bucket (TemplateURL), as the zips do.
    p.deploy_cmd = ["aws", "cloudformation", "deploy", "--region", region,
                    "--template-file", p.packaged, "--stack-name", stack_name,
                    "--s3-bucket", deploy["CodeS3Bucket"], "--s3-prefix", deploy["CodeS3Prefix"],
                    "--capabilities", "CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND", "--no-fail-on-empty-changeset",
                    "--parameter-overrides"] + overrides
    p.forwarders = []
    if not builtins:
        for r, pattern in forwarder_regions:
            sources, detail_types = pattern or (rules_params["EventSources"], rules_params["EventDetailTypes"])
            # Inline: the code bucket is in another region, and CloudFormation reads a
            # TemplateURL in the stack's own region; forwarder.yaml is small (checked above).
            p.forwarders.append(
                ["aws", "cloudformation", "deploy", "--region", r,
                 "--template-file", os.path.join(ROOT, "forwarder.yaml"),
                 "--stack-name", stack_name + "-forwarder",
                 "--capabilities", "CAPABILITY_IAM", "--no-fail-on-empty-changeset",
                 "--parameter-overrides", "MainRegion=" + region,
                 "EventSources=" + sources, "EventDetailTypes=" + detail_types])
    return p


# ---- running it ----

def run(cmd, what, **kw):
    print("+ " + shlex.join(cmd), flush=True)
    if subprocess.run(cmd, **kw).returncode != 0:
        fail(what)


def aws_json(cmd):
    out = subprocess.run(cmd + ["--output", "json"], capture_output=True, text=True)
    if out.returncode != 0:
        return None, (out.stderr.strip() or out.stdout.strip())
    return json.loads(out.stdout or "null"), None


def failed_events(stack_name, region):
    events, _ = aws_json(["aws", "cloudformation", "describe-stack-events", "--region", region, "--stack-name", stack_name])
    lines = []
    for e in (events or {}).get("StackEvents", [])[:40]:
        if e.get("ResourceStatus", "").endswith("FAILED") and e.get("ResourceStatusReason"):
            lines.append("  %s (%s): %s" % (e.get("LogicalResourceId"), e.get("ResourceType"), e["ResourceStatusReason"]))
    return "\n".join(lines)


def deploy_stack(cmd, stack_name, region, what):
    print("+ " + shlex.join(cmd), flush=True)
    if subprocess.run(cmd).returncode != 0:
        why = failed_events(stack_name, region)
        fail("%s%s" % (what, (":\n" + why) if why else ""))


def check_credentials(p):
    check = subprocess.run(p.sts, capture_output=True, text=True)
    if check.returncode != 0:
        fail("no usable AWS credentials for %s (aws sts get-caller-identity said: %s).\n"
             "Configure them (aws configure, AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and retry."
             % (p.region, check.stderr.strip() or check.stdout.strip()))


def print_outputs(stack_name, region):
    stacks, _ = aws_json(["aws", "cloudformation", "describe-stacks", "--region", region, "--stack-name", stack_name])
    outputs = {o["OutputKey"]: o["OutputValue"] for o in ((stacks or {}).get("Stacks") or [{}])[0].get("Outputs", [])}
    for key in ["AlertTopicArn", "TaskTopicArn", "ReportTopicArn", "InspectionQueueUrl"]:
        if key in outputs:
            print("  %-20s %s" % (key, outputs[key]))
    if "AlarmTopicArn" in outputs:
        print("  %-20s %s" % ("AlarmTopicArn", outputs["AlarmTopicArn"]))
        print("  alarms go to that topic; subscribe to it, e.g.:\n"
              "    aws sns subscribe --region %s --topic-arn %s --protocol email --notification-endpoint you@example.com"
              % (region, outputs["AlarmTopicArn"]))


def deploy_main(args, builtins):
    p = plan(args, builtins)
    if args.dry_run:
        # Quoted as a shell would need them: detail-types have spaces.
        for c in [p.build, p.sts, p.package, p.deploy_cmd] + p.forwarders:
            if c:
                print(shlex.join(c))
        return
    if not shutil.which("aws"):
        fail("the AWS CLI is missing: run `make deploy` (it installs it into .venv)")
    check_credentials(p)
    if p.build:
        run(p.build, "make build failed")
    stage(p.template, p.lambda_dir, p.staging, p.documents, p.wanted, p.binaries)
    function_code(p.staged_template)  # every function names its own zip, before anything is uploaded
    run(p.package, "aws cloudformation package failed")
    verify_packaged(p.staged_template, p.packaged)
    size = os.path.getsize(p.packaged)
    say("packaged template: %d bytes (over %d goes through s3://%s, as it does here)"
        % (size, TEMPLATE_BODY_LIMIT, p.deploy["CodeS3Bucket"]))
    deploy_stack(p.deploy_cmd, p.stack_name, p.region, "aws cloudformation deploy of %s failed" % p.stack_name)
    for c in p.forwarders:
        r = c[c.index("--region") + 1]
        deploy_stack(c, p.stack_name + "-forwarder", r, "deploying the forwarder in %s failed" % r)
    print("deployed stack %s in %s" % (p.stack_name, p.region))
    print_outputs(p.stack_name, p.region)


# ---- make remove ----

def stack_exists(name, region):
    stacks, err = aws_json(["aws", "cloudformation", "describe-stacks", "--region", region, "--stack-name", name])
    if stacks is None:
        if "does not exist" in (err or ""):
            return False
        fail("cannot look up stack %s in %s: %s" % (name, region, err))
    status = stacks["Stacks"][0].get("StackStatus", "")
    return status != "DELETE_COMPLETE"


def remove(args):
    deploy = render(args.deploy)
    for field in ("StackName", "Region", "CodeS3Bucket", "CodeS3Prefix"):
        if not isinstance(deploy.get(field), str):
            fail("deploy.jsonnet: %s must be a string" % field)
    name, region = deploy["StackName"], deploy["Region"]
    regions = [r for r in deploy.get("Regions") or [] if r != region]
    global_region = GLOBAL_REGION[partition_of(region)]
    if global_region != region and global_region not in regions:
        regions.append(global_region)  # where make deploy may have added one for global events
    template = load_template(args.template)
    retained = {logical: r["Type"] for logical, r in (template.get("Resources") or {}).items()
                if r.get("DeletionPolicy") == "Retain"}
    if not shutil.which("aws"):
        fail("the AWS CLI is missing: run `make remove` (it installs it into .venv)")
    order = []
    if stack_exists(name + "-builtins", region):
        order.append((name + "-builtins", region))
    for r in regions:
        if stack_exists(name + "-forwarder", r):
            order.append((name + "-forwarder", r))
    main_exists = stack_exists(name, region)
    if main_exists:
        order.append((name, region))
    if not order:
        say("no stack %s (or its forwarders, or %s-builtins) exists in %s: nothing to remove"
            % (name, name, ", ".join([region] + regions)))
        return
    kept = []
    if main_exists:
        resources, _ = aws_json(["aws", "cloudformation", "describe-stack-resources", "--region", region, "--stack-name", name])
        for res in (resources or {}).get("StackResources", []):
            if res["LogicalResourceId"] in retained:
                kept.append("%s %s (%s: DeletionPolicy Retain)" % (res["ResourceType"], res["PhysicalResourceId"], res["LogicalResourceId"]))
    kept.append("the code and templates in s3://%s/%s (aws s3 rm --recursive s3://%s/%s)"
                % (deploy["CodeS3Bucket"], deploy["CodeS3Prefix"], deploy["CodeS3Bucket"], deploy["CodeS3Prefix"]))
    print("This deletes, in this order:")
    for s, r in order:
        print("  stack %s in %s" % (s, r))
    print("It keeps:")
    for k in kept:
        print("  " + k)
    print("  (the functions' and state machines' log groups are the stack's and go with it)")
    if args.dry_run:
        return
    if not args.yes:
        if not sys.stdin.isatty():
            fail("not removing without a confirmation: run `make remove YES=1` to remove without asking")
        answer = input("Remove them? Type the stack name (%s) to confirm: " % name)
        if answer.strip() != name:
            fail("not removed")
    for s, r in order:
        run(["aws", "cloudformation", "delete-stack", "--region", r, "--stack-name", s], "deleting %s in %s failed" % (s, r))
        print("+ aws cloudformation wait stack-delete-complete --region %s --stack-name %s" % (r, s), flush=True)
        if subprocess.run(["aws", "cloudformation", "wait", "stack-delete-complete", "--region", r, "--stack-name", s]).returncode != 0:
            why = failed_events(s, r)
            fail("deleting %s in %s did not complete%s" % (s, r, (":\n" + why) if why else ""))
    say("removed %s" % ", ".join("%s (%s)" % o for o in order))


def main():
    parser = argparse.ArgumentParser(description="Deploy deepalert to AWS.")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--builtins", action="store_true")
    parser.add_argument("--remove", action="store_true")
    parser.add_argument("--yes", action="store_true")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--lambda-dir", default=os.path.join(ROOT, "target", "lambda"))
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
    args.stack = args.stack or os.path.join(ROOT, "builtins.jsonnet" if args.builtins else "stack.jsonnet")
    args.template = os.path.abspath(args.template or os.path.join(
        ROOT, "examples/aws/builtins.yaml" if args.builtins else "template.yaml"))
    if args.verify_packaged:
        verify_packaged(args.template, args.verify_packaged)
        print("%s: every function's code is its own zip with bootstrap" % args.verify_packaged)
        return
    if args.remove:
        remove(args)
        return
    deploy_main(args, args.builtins)


if __name__ == "__main__":
    main()
