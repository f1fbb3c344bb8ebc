"""Deploys a SAM template into moto, resource by resource, as CloudFormation would.

moto's own CloudFormation skips resources it does not model (SNS subscriptions, queue
policies, alarms) and ignores a state machine's `Definition` and `DefinitionSubstitutions`,
so this script does the stack's job itself, from the template we ship:

1. every function's `CodeUri` is swapped for an S3 URI (what `aws cloudformation package`
   does), then AWS's own SAM translator (`aws-sam-translator`) expands the transform;
2. intrinsics are resolved (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::If` and conditions,
   `Fn::Join`, `Fn::Select`, `Fn::Split`, `Fn::ImportValue` from `--exports`);
3. resources are created in dependency order with boto3 against moto;
4. a JSON description goes to stdout: resources (physical ids, attributes, resolved
   properties), outputs with export names, Lambda functions (binary from `CodeUri`,
   resolved environment) and SQS event source mappings. Functions and mappings are created
   in moto but never run by it: the test harness runs the real binaries and the pollers.

A resource type this script does not know fails the deployment, so a template change can
never silently go untested.

usage: deploy_template.py TEMPLATE STACK_NAME ENDPOINT [--parameters JSON] [--exports JSON]
"""
import argparse
import copy
import io
import json
import os
import re
import sys
import zipfile

import boto3
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ACCOUNT = "123456789012"
REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
NO_VALUE = object()


class DeployError(Exception):
    pass


def client(name, endpoint):
    return boto3.client(name, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def dummy_zip():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\n# run by the test harness, not by moto\n")
    return buf.getvalue()


class Stack:
    def __init__(self, template, name, endpoint, parameters, exports):
        self.template = template
        self.name = name
        self.endpoint = endpoint
        self.exports = exports
        self.clients = {}
        self.physical = {}   # logical id -> Ref value
        self.attrs = {}      # logical id -> {attribute: value}
        self.resolved = {}   # logical id -> resolved properties
        self.params = {}
        for key, spec in (template.get("Parameters") or {}).items():
            if key in parameters:
                value = parameters[key]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise DeployError("parameter %s has no default and was not given" % key)
            if spec.get("AllowedValues") and str(value) not in [str(v) for v in spec["AllowedValues"]]:
                raise DeployError("parameter %s=%r is not one of %s" % (key, value, spec["AllowedValues"]))
            if spec.get("Type") == "CommaDelimitedList":
                self.params[key] = value if isinstance(value, list) else str(value).split(",")
            else:
                self.params[key] = str(value)
        unknown = set(parameters) - set(self.params)
        if unknown:
            raise DeployError("unknown parameter(s): %s" % ", ".join(sorted(unknown)))
        self.conditions = {}
        for key in (template.get("Conditions") or {}):
            self.conditions[key] = self.condition(key)

    def aws(self, name):
        if name not in self.clients:
            self.clients[name] = client(name, self.endpoint)
        return self.clients[name]

    # ---- intrinsics ----

    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self.conditions[name]

    def pseudo(self, name):
        return {
            "AWS::StackName": self.name,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": "arn:aws:cloudformation:%s:%s:stack/%s/0" % (REGION, ACCOUNT, self.name),
            "AWS::NoValue": NO_VALUE,
        }.get(name)

    def ref(self, name):
        if name in self.params:
            return self.params[name]
        p = self.pseudo(name)
        if p is not None:
            return p
        if name in self.physical:
            return self.physical[name]
        raise DeployError("Ref %s: not a parameter or a created resource" % name)

    def getatt(self, logical, attr):
        if logical not in self.attrs:
            raise DeployError("GetAtt %s.%s: resource not created" % (logical, attr))
        if attr not in self.attrs[logical]:
            raise DeployError("GetAtt %s.%s: unknown attribute (known: %s)" % (logical, attr, ", ".join(self.attrs[logical])))
        return self.attrs[logical][attr]

    def sub(self, text, variables):
        def one(m):
            expr = m.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in variables:
                return str(variables[expr])
            if "." in expr:
                logical, attr = expr.split(".", 1)
                return str(self.getatt(logical, attr))
            return str(self.ref(expr))
        return re.sub(r"\$\{([^}]+)\}", one, text)

    def resolve(self, v):
        if isinstance(v, list):
            out = [self.resolve(x) for x in v]
            return [x for x in out if x is not NO_VALUE]
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
                if isinstance(arg, list):
                    return self.sub(arg[0], {n: self.resolve(x) for n, x in arg[1].items()})
                return self.sub(arg, {})
            if k == "Fn::If":
                name, yes, no = arg
                return self.resolve(yes if self.condition(name) else no)
            if k == "Fn::Equals":
                a, b = [self.resolve(x) for x in arg]
                return str(a) == str(b)
            if k == "Fn::Not":
                return not self.resolve(arg[0])
            if k == "Fn::And":
                return all(self.resolve(x) for x in arg)
            if k == "Fn::Or":
                return any(self.resolve(x) for x in arg)
            if k == "Condition":
                return self.condition(arg)
            if k == "Fn::Join":
                sep, items = arg
                return sep.join(str(x) for x in self.resolve(items))
            if k == "Fn::Select":
                idx, items = arg
                return self.resolve(items)[int(self.resolve(idx))]
            if k == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text)).split(sep)
            if k == "Fn::ImportValue":
                name = self.resolve(arg)
                if name not in self.exports:
                    raise DeployError("Fn::ImportValue %s: no such export (exports: %s)" % (name, ", ".join(sorted(self.exports)) or "none"))
                return self.exports[name]
            if k == "Fn::ToJsonString":
                return json.dumps(self.resolve(arg))
            if k.startswith("Fn::"):
                raise DeployError("intrinsic %s is not supported by the test deployer" % k)
        out = {}
        for key, x in v.items():
            r = self.resolve(x)
            if r is not NO_VALUE:
                out[key] = r
        return out

    # ---- dependency order ----

    def deps(self, logical, resource):
        found = set(resource.get("DependsOn") or []) if isinstance(resource.get("DependsOn"), list) else ({resource["DependsOn"]} if resource.get("DependsOn") else set())
        resources = self.template["Resources"]

        def walk(x):
            if isinstance(x, list):
                for y in x:
                    walk(y)
            elif isinstance(x, dict):
                for k, y in x.items():
                    if k == "Ref" and isinstance(y, str) and y in resources:
                        found.add(y)
                    elif k == "Fn::GetAtt":
                        target = y[0] if isinstance(y, list) else y.split(".")[0]
                        found.add(target)
                    elif k == "Fn::Sub":
                        text = y[0] if isinstance(y, list) else y
                        for m in re.findall(r"\$\{([^}!]+)\}", text):
                            t = m.split(".")[0]
                            if t in resources:
                                found.add(t)
                        if isinstance(y, list):
                            walk(y[1])
                    else:
                        walk(y)
        walk(resource.get("Properties") or {})
        found.discard(logical)
        return found

    def order(self):
        resources = self.template["Resources"]
        done, out, visiting = set(), [], set()

        def visit(n):
            if n in done:
                return
            if n in visiting:
                raise DeployError("circular dependency at %s" % n)
            visiting.add(n)
            for d in sorted(self.deps(n, resources[n])):
                visit(d)
            visiting.discard(n)
            done.add(n)
            out.append(n)
        for n in resources:
            visit(n)
        return out

    # ---- resources ----

    def create_all(self):
        for logical in self.order():
            r = self.template["Resources"][logical]
            if "Condition" in r and not self.condition(r["Condition"]):
                continue
            props = self.resolve(r.get("Properties") or {})
            self.resolved[logical] = {"type": r["Type"], "properties": props}
            handler = CREATORS.get(r["Type"])
            if handler is None:
                raise DeployError("%s: resource type %s is not emulated by tests/moto/deploy_template.py; add it there" % (logical, r["Type"]))
            try:
                ref, attrs = handler(self, logical, props)
            except DeployError:
                raise
            except Exception as e:  # boto3 / moto refused it: say which resource
                raise DeployError("%s (%s): %s" % (logical, r["Type"], e)) from e
            self.physical[logical] = ref
            self.attrs[logical] = attrs
            self.resolved[logical]["physical_id"] = ref
            self.resolved[logical]["attributes"] = attrs

    def physical_name(self, logical, props, key):
        return props.get(key) or ("%s-%s" % (self.name, logical))[:64]


def arn(service, resource):
    return "arn:aws:%s:%s:%s:%s" % (service, REGION, ACCOUNT, resource)


def create_table(s, logical, p):
    ddb = s.aws("dynamodb")
    name = s.physical_name(logical, p, "TableName")
    args = {k: p[k] for k in ["AttributeDefinitions", "KeySchema", "BillingMode", "GlobalSecondaryIndexes",
                              "LocalSecondaryIndexes", "ProvisionedThroughput", "StreamSpecification",
                              "Tags"] if k in p}
    if "SSESpecification" in p:
        sse = {"Enabled": bool(p["SSESpecification"].get("SSEEnabled"))}
        if p["SSESpecification"].get("KMSMasterKeyId"):
            sse["SSEType"] = "KMS"
            sse["KMSMasterKeyId"] = p["SSESpecification"]["KMSMasterKeyId"]
        args["SSESpecification"] = sse
    out = ddb.create_table(TableName=name, **args)["TableDescription"]
    if "TimeToLiveSpecification" in p:
        ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
            "AttributeName": p["TimeToLiveSpecification"]["AttributeName"],
            "Enabled": str(p["TimeToLiveSpecification"]["Enabled"]).lower() == "true"})
    pitr = p.get("PointInTimeRecoverySpecification")
    if pitr:
        ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": str(pitr.get("PointInTimeRecoveryEnabled")).lower() == "true"})
    return name, {"Arn": out["TableArn"], "StreamArn": out.get("LatestStreamArn", "")}


def create_topic(s, logical, p):
    attributes = {}
    if p.get("KmsMasterKeyId"):
        attributes["KmsMasterKeyId"] = p["KmsMasterKeyId"]
    name = s.physical_name(logical, p, "TopicName")
    topic = s.aws("sns").create_topic(Name=name, Attributes=attributes)["TopicArn"]
    for sub in p.get("Subscription") or []:
        s.aws("sns").subscribe(TopicArn=topic, Protocol=sub["Protocol"], Endpoint=sub["Endpoint"])
    return topic, {"TopicArn": topic, "TopicName": name}


def create_queue(s, logical, p):
    name = s.physical_name(logical, p, "QueueName")
    attributes = {}
    for key in ["VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "MaximumMessageSize",
                "ReceiveMessageWaitTimeSeconds", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds",
                "SqsManagedSseEnabled", "FifoQueue", "ContentBasedDeduplication"]:
        if key in p:
            v = p[key]
            attributes[key] = str(v).lower() if isinstance(v, bool) else str(v)
    for key in ["RedrivePolicy", "RedriveAllowPolicy"]:
        if key in p:
            attributes[key] = json.dumps(p[key]) if isinstance(p[key], dict) else p[key]
    url = s.aws("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    qarn = s.aws("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, {"Arn": qarn, "QueueName": name, "QueueUrl": url}


def create_queue_policy(s, logical, p):
    for url in p["Queues"]:
        s.aws("sqs").set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(p["PolicyDocument"])})
    return logical, {}


def create_topic_policy(s, logical, p):
    for topic in p["Topics"]:
        s.aws("sns").set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(p["PolicyDocument"]))
    return logical, {}


def create_subscription(s, logical, p):
    attributes = {}
    for key in ["RawMessageDelivery", "FilterPolicyScope", "DeliveryPolicy"]:
        if key in p:
            v = p[key]
            attributes[key] = str(v).lower() if isinstance(v, bool) else (json.dumps(v) if isinstance(v, dict) else str(v))
    for key in ["FilterPolicy", "RedrivePolicy"]:
        if key in p:
            attributes[key] = json.dumps(p[key]) if isinstance(p[key], dict) else p[key]
    sub = s.aws("sns").subscribe(TopicArn=p["TopicArn"], Protocol=p["Protocol"], Endpoint=p["Endpoint"],
                                 Attributes=attributes, ReturnSubscriptionArn=True)["SubscriptionArn"]
    return sub, {}


def create_role(s, logical, p):
    iam = s.aws("iam")
    name = s.physical_name(logical, p, "RoleName")
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(p["AssumeRolePolicyDocument"]),
                           Path=p.get("Path", "/"))["Role"]
    for pol in p.get("Policies") or []:
        iam.put_role_policy(RoleName=name, PolicyName=pol["PolicyName"], PolicyDocument=json.dumps(versioned(pol["PolicyDocument"])))
    # AWS-managed policies (ManagedPolicyArns) are recorded, not attached: moto only
    # knows them with MOTO_IAM_LOAD_MANAGED_POLICIES, and no test reads them back.
    return name, {"Arn": role["Arn"], "RoleId": role["RoleId"]}


def versioned(document):
    # IAM takes a document without Version as 2008-10-17 (SAM's policy templates write
    # none); moto refuses it. The statements are what matter here.
    return dict(document, Version=document.get("Version", "2012-10-17"))


def create_iam_policy(s, logical, p):
    iam = s.aws("iam")
    for role in p.get("Roles") or []:
        iam.put_role_policy(RoleName=role, PolicyName=p["PolicyName"], PolicyDocument=json.dumps(versioned(p["PolicyDocument"])))
    return logical, {}


def create_function(s, logical, p):
    name = s.physical_name(logical, p, "FunctionName")
    args = dict(FunctionName=name, Runtime=p.get("Runtime", "provided.al2023"), Role=p["Role"],
                Handler=p.get("Handler", "bootstrap"), Code={"ZipFile": dummy_zip()},
                Timeout=int(p.get("Timeout", 3)), MemorySize=int(p.get("MemorySize", 128)))
    if "Environment" in p:
        args["Environment"] = {"Variables": {k: str(v) for k, v in p["Environment"].get("Variables", {}).items()}}
    if "Architectures" in p:
        args["Architectures"] = p["Architectures"]
    if "TracingConfig" in p:
        args["TracingConfig"] = p["TracingConfig"]
    if "LoggingConfig" in p:
        args["LoggingConfig"] = p["LoggingConfig"]
    out = s.aws("lambda").create_function(**args)
    if "ReservedConcurrentExecutions" in p:
        s.aws("lambda").put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=int(p["ReservedConcurrentExecutions"]))
    return name, {"Arn": out["FunctionArn"]}


def record_only(s, logical, p):
    # Event source mappings are run by the harness's pollers (honouring BatchSize and
    # ReportBatchItemFailures); permissions have nothing to emulate.
    return logical, {}


def create_event_invoke_config(s, logical, p):
    args = {"FunctionName": p["FunctionName"]}
    if p.get("Qualifier") and p["Qualifier"] != "$LATEST":
        args["Qualifier"] = p["Qualifier"]
    for key in ["MaximumRetryAttempts", "MaximumEventAgeInSeconds"]:
        if key in p:
            args[key] = int(p[key])
    if "DestinationConfig" in p:
        args["DestinationConfig"] = p["DestinationConfig"]
    s.aws("lambda").put_function_event_invoke_config(**args)
    return logical, {}


def create_state_machine(s, logical, p):
    definition = p.get("DefinitionString")
    if definition is None:
        definition = json.dumps(p["Definition"])
    for key, value in (p.get("DefinitionSubstitutions") or {}).items():
        definition = definition.replace("${%s}" % key, str(value))
    name = s.physical_name(logical, p, "StateMachineName")
    args = dict(name=name, definition=definition, roleArn=p["RoleArn"], type=p.get("StateMachineType", "STANDARD"))
    if "LoggingConfiguration" in p:
        lc = copy.deepcopy(p["LoggingConfiguration"])
        args["loggingConfiguration"] = {
            "level": lc.get("Level", "OFF"),
            "includeExecutionData": bool(lc.get("IncludeExecutionData", False)),
            "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": d["CloudWatchLogsLogGroup"]["LogGroupArn"]}}
                             for d in lc.get("Destinations", [])],
        }
    if "TracingConfiguration" in p:
        args["tracingConfiguration"] = {"enabled": str(p["TracingConfiguration"].get("Enabled")).lower() == "true"}
    out = s.aws("stepfunctions").create_state_machine(**args)
    return out["stateMachineArn"], {"Arn": out["stateMachineArn"], "Name": name}


def create_log_group(s, logical, p):
    name = p.get("LogGroupName") or "/%s/%s" % (s.name, logical)
    args = {"logGroupName": name}
    if p.get("KmsKeyId"):
        args["kmsKeyId"] = p["KmsKeyId"]
    s.aws("logs").create_log_group(**args)
    if "RetentionInDays" in p:
        s.aws("logs").put_retention_policy(logGroupName=name, retentionInDays=int(p["RetentionInDays"]))
    return name, {"Arn": arn("logs", "log-group:%s:*" % name)}


def create_alarm(s, logical, p):
    name = p.get("AlarmName") or "%s-%s" % (s.name, logical)
    args = {"AlarmName": name}
    for key in ["AlarmDescription", "MetricName", "Namespace", "Statistic", "Period", "EvaluationPeriods",
                "Threshold", "ComparisonOperator", "TreatMissingData", "AlarmActions", "OKActions",
                "Dimensions", "DatapointsToAlarm", "Metrics"]:
        if key in p:
            v = p[key]
            if key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
                v = int(v)
            if key == "Threshold":
                v = float(v)
            args[key] = v
    s.aws("cloudwatch").put_metric_alarm(**args)
    return name, {"Arn": arn("cloudwatch", "alarm:%s" % name)}


def create_key(s, logical, p):
    args = {"Description": p.get("Description", logical)}
    if "KeyPolicy" in p:
        args["Policy"] = json.dumps(p["KeyPolicy"])
    key = s.aws("kms").create_key(**args)["KeyMetadata"]
    return key["KeyId"], {"Arn": key["Arn"], "KeyId": key["KeyId"]}


def create_alias(s, logical, p):
    s.aws("kms").create_alias(AliasName=p["AliasName"], TargetKeyId=p["TargetKeyId"])
    return p["AliasName"], {}


def create_rule(s, logical, p):
    ev = s.aws("events")
    name = s.physical_name(logical, p, "Name")
    args = {"Name": name, "State": p.get("State", "ENABLED")}
    if "EventPattern" in p:
        args["EventPattern"] = json.dumps(p["EventPattern"]) if isinstance(p["EventPattern"], dict) else p["EventPattern"]
    if "ScheduleExpression" in p:
        args["ScheduleExpression"] = p["ScheduleExpression"]
    if "EventBusName" in p:
        args["EventBusName"] = p["EventBusName"]
    if "Description" in p:
        args["Description"] = p["Description"]
    rule_arn = ev.put_rule(**args)["RuleArn"]
    targets = []
    for t in p.get("Targets") or []:
        target = {"Id": t["Id"], "Arn": t["Arn"]}
        for key in ["RoleArn", "Input", "InputPath", "DeadLetterConfig", "RetryPolicy"]:
            if key in t:
                target[key] = t[key]
        targets.append(target)
    if targets:
        kw = {"Rule": name, "Targets": targets}
        if "EventBusName" in p:
            kw["EventBusName"] = p["EventBusName"]
        ev.put_targets(**kw)
    return name, {"Arn": rule_arn}


CREATORS = {
    "AWS::DynamoDB::Table": create_table,
    "AWS::SNS::Topic": create_topic,
    "AWS::SNS::TopicPolicy": create_topic_policy,
    "AWS::SNS::Subscription": create_subscription,
    "AWS::SQS::Queue": create_queue,
    "AWS::SQS::QueuePolicy": create_queue_policy,
    "AWS::IAM::Role": create_role,
    "AWS::IAM::Policy": create_iam_policy,
    "AWS::Lambda::Function": create_function,
    "AWS::Lambda::EventSourceMapping": record_only,
    "AWS::Lambda::Permission": record_only,
    "AWS::Lambda::EventInvokeConfig": create_event_invoke_config,
    "AWS::StepFunctions::StateMachine": create_state_machine,
    "AWS::Logs::LogGroup": create_log_group,
    "AWS::CloudWatch::Alarm": create_alarm,
    "AWS::KMS::Key": create_key,
    "AWS::KMS::Alias": create_alias,
    "AWS::Events::Rule": create_rule,
}


def binaries(template):
    """Function logical id -> binary name, from `CodeUri: …/target/lambda/<name>/bootstrap.zip`."""
    glob = ((template.get("Globals") or {}).get("Function") or {}).get("CodeUri")
    out = {}
    for logical, r in template["Resources"].items():
        if r["Type"] != "AWS::Serverless::Function":
            continue
        uri = (r.get("Properties") or {}).get("CodeUri") or glob
        m = re.search(r"target/lambda/([^/]+)/bootstrap\.zip$", uri or "")
        if not m:
            raise DeployError("%s: CodeUri %r is not target/lambda/<binary>/bootstrap.zip" % (logical, uri))
        out[logical] = m.group(1)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("template")
    ap.add_argument("stack_name")
    ap.add_argument("endpoint")
    ap.add_argument("--parameters", default="{}")
    ap.add_argument("--exports", default="{}")
    args = ap.parse_args()
    with open(args.template, encoding="utf-8") as f:
        sam = yaml_parse(f.read())
    bins = binaries(sam)
    # What `aws cloudformation package` does before the transform runs.
    for logical in bins:
        sam["Resources"][logical].setdefault("Properties", {})["CodeUri"] = "s3://deepalert-test-code/%s.zip" % logical
    if "Globals" in sam and "Function" in sam["Globals"]:
        sam["Globals"]["Function"].pop("CodeUri", None)

    class NoManagedPolicies:
        def load(self):
            return {}
    cfn = transform(sam, json.loads(args.parameters), NoManagedPolicies())
    stack = Stack(cfn, args.stack_name, args.endpoint, json.loads(args.parameters), json.loads(args.exports))
    stack.create_all()

    outputs = {}
    for key, o in (cfn.get("Outputs") or {}).items():
        if "Condition" in o and not stack.condition(o["Condition"]):
            continue
        entry = {"value": stack.resolve(o["Value"])}
        if "Export" in o:
            entry["export"] = stack.resolve(o["Export"]["Name"])
        outputs[key] = entry
    functions = {}
    for logical, binary in bins.items():
        if logical not in stack.resolved:
            continue
        props = stack.resolved[logical]["properties"]
        functions[logical] = {
            "name": stack.physical[logical],
            "binary": binary,
            "environment": {k: str(v) for k, v in (props.get("Environment") or {}).get("Variables", {}).items()},
            "timeout": int(props.get("Timeout", 3)),
            "memory": int(props.get("MemorySize", 128)),
            "reserved_concurrency": stack.aws("lambda").get_function_concurrency(
                FunctionName=stack.physical[logical]).get("ReservedConcurrentExecutions"),
        }
    mappings = []
    for logical, r in stack.resolved.items():
        if r["type"] != "AWS::Lambda::EventSourceMapping":
            continue
        p = r["properties"]
        fn = next((l for l, f in functions.items() if f["name"] == p["FunctionName"]), None)
        mappings.append({
            "logical_id": logical,
            "function": fn,
            "event_source_arn": p["EventSourceArn"],
            "batch_size": int(p.get("BatchSize", 10)),
            "report_batch_item_failures": "ReportBatchItemFailures" in (p.get("FunctionResponseTypes") or []),
            "maximum_batching_window_seconds": int(p.get("MaximumBatchingWindowInSeconds", 0)),
            "maximum_concurrency": (p.get("ScalingConfig") or {}).get("MaximumConcurrency"),
        })
    json.dump({
        "stack": args.stack_name,
        "parameters": stack.params,
        "conditions": stack.conditions,
        "resources": stack.resolved,
        "outputs": outputs,
        "functions": functions,
        "event_source_mappings": mappings,
    }, sys.stdout, indent=1, default=str)


if __name__ == "__main__":
    try:
        main()
    except DeployError as e:
        print("deploy_template: %s" % e, file=sys.stderr)
        sys.exit(2)
