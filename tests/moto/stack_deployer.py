"""CloudFormation's job, done against moto: create, update and delete a stack's resources
from the template we ship.

moto's own CloudFormation skips resources it does not model (SNS subscriptions, queue and
topic policies, alarms), does not run the SAM transform and ignores a state machine's
`Definition` and `DefinitionSubstitutions`. This module does what CloudFormation does:

1. a SAM template (`Transform: AWS::Serverless-2016-10-31`) is expanded by AWS's own SAM
   translator (`aws-sam-translator`), with the stack's partition;
2. parameters are checked as CloudFormation checks them (AllowedValues, AllowedPattern,
   Min/MaxValue, Min/MaxLength, and AWS's 4,096-byte limit on a parameter value);
3. intrinsics are resolved (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::If` and conditions,
   `Fn::Join`, `Fn::Select`, `Fn::Split`, `Fn::ImportValue`, `Fn::ToJsonString`);
4. resources are created, updated in place or deleted in dependency order with boto3
   against moto; `DeletionPolicy: Retain` keeps a resource when it leaves the stack;
5. explicit names are checked against AWS's length limits (moto does not check them),
   and generated names are derived as CloudFormation derives them: the stack name and
   the logical id, cut to fit the resource type's limit, with a suffix.

`describe()` gives what the test harness needs to run the stack: every resource (physical
id, attributes, resolved properties), outputs with export names, the Lambda functions (code
location, resolved environment) and the SQS event source mappings, which are recorded
here and never given to moto (moto would invoke the functions itself; the harness runs
the real binaries and polls the queues).

A resource type this module does not know fails the deployment, so a template change can
never silently go untested.
"""
import copy
import hashlib
import json
import re

import boto3

ACCOUNT = "123456789012"
NO_VALUE = object()
SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
# AWS limits on a parameter's value and on names (moto enforces none of them).
PARAMETER_VALUE_LIMIT = 4096
NAME_LIMITS = {
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


class DeployError(Exception):
    pass


def partition_of(region):
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def url_suffix(region):
    return "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"


def is_sam(template):
    t = template.get("Transform")
    return t == SAM_TRANSFORM or (isinstance(t, list) and SAM_TRANSFORM in t)


def sam_transform(template, parameters, region):
    """The SAM transform, as CloudFormation runs it in `region` (its partition included).
    AWS-managed policies are not looked up: moto only knows them with
    MOTO_IAM_LOAD_MANAGED_POLICIES, and roles get them recorded, not attached."""
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.arn_generator import ArnGenerator
    from samtranslator.translator.translator import Translator
    from samtranslator.utils.py27hash_fix import to_py27_compatible_template, undo_mark_unicode_str_in_template

    ArnGenerator.BOTO_SESSION_REGION_NAME = region
    fragment, values = copy.deepcopy(template), dict(parameters)
    to_py27_compatible_template(fragment, values)
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    out = translator.translate(fragment, parameter_values=values, get_managed_policy_map=lambda: {})
    return undo_mark_unicode_str_in_template(out)


class Deployment:
    """One stack's resources in moto, across its creation, updates and deletion."""

    def __init__(self, name, endpoint, region, account=ACCOUNT, access_key="testing"):
        self.name = name
        self.endpoint = endpoint
        self.region = region
        self.account = account
        self.partition = partition_of(region)
        self.access_key = access_key
        self.clients = {}
        self.template = {"Resources": {}}
        self.params = {}
        self.conditions = {}
        self.exports = {}
        self.physical = {}   # logical id -> Ref value
        self.attrs = {}      # logical id -> {attribute: value}
        self.resolved = {}   # logical id -> {"type", "properties", "physical_id", "attributes"}

    def aws(self, service):
        if service not in self.clients:
            self.clients[service] = boto3.client(
                service, endpoint_url=self.endpoint, region_name=self.region,
                aws_access_key_id=self.access_key, aws_secret_access_key="testing")
        return self.clients[service]

    def arn(self, service, resource, region=None, account=None):
        region = self.region if region is None else region
        account = self.account if account is None else account
        return "arn:%s:%s:%s:%s:%s" % (self.partition, service, region, account, resource)

    # ---- parameters and conditions ----

    def set_parameters(self, template, given):
        params = {}
        specs = template.get("Parameters") or {}
        for key, spec in specs.items():
            if key in given:
                value = given[key]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise DeployError("Parameters: [%s] must have values" % key)
            kind = spec.get("Type", "String")
            if isinstance(value, list):
                text = ",".join(str(v) for v in value)
            else:
                text = str(value)
            if len(text.encode("utf-8")) > PARAMETER_VALUE_LIMIT:
                # AWS: "Parameter value for parameter name X exceeds the limit of 4096 bytes".
                raise DeployError("Parameter value for parameter name %s exceeds the limit of %d bytes (%d)"
                                  % (key, PARAMETER_VALUE_LIMIT, len(text.encode("utf-8"))))
            if spec.get("AllowedValues") and text not in [str(v) for v in spec["AllowedValues"]]:
                raise DeployError("Parameter '%s' must be one of AllowedValues" % key)
            if spec.get("AllowedPattern") and kind == "String" and not re.fullmatch(spec["AllowedPattern"], text):
                raise DeployError("Parameter '%s' must match pattern %s" % (key, spec["AllowedPattern"]))
            if kind == "Number":
                try:
                    number = float(text)
                except ValueError:
                    raise DeployError("Parameter '%s' must be a number" % key)
                if "MinValue" in spec and number < float(spec["MinValue"]):
                    raise DeployError("Parameter '%s' must be a number not less than %s" % (key, spec["MinValue"]))
                if "MaxValue" in spec and number > float(spec["MaxValue"]):
                    raise DeployError("Parameter '%s' must be a number not greater than %s" % (key, spec["MaxValue"]))
            if "MaxLength" in spec and len(text) > int(spec["MaxLength"]):
                raise DeployError("Parameter '%s' must contain at most %s characters" % (key, spec["MaxLength"]))
            if "MinLength" in spec and len(text) < int(spec["MinLength"]):
                raise DeployError("Parameter '%s' must contain at least %s characters" % (key, spec["MinLength"]))
            params[key] = text.split(",") if kind == "CommaDelimitedList" else text
        unknown = set(given) - set(specs)
        if unknown:
            raise DeployError("Parameters: [%s] do not exist in the template" % ", ".join(sorted(unknown)))
        self.params = params
        self.conditions = {}
        for key in (template.get("Conditions") or {}):
            self.condition(key)

    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self.conditions[name]

    # ---- intrinsics ----

    def pseudo(self, name):
        return {
            "AWS::StackName": self.name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": url_suffix(self.region),
            "AWS::StackId": "arn:%s:cloudformation:%s:%s:stack/%s/0" % (self.partition, self.region, self.account, self.name),
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
                    raise DeployError("No export named %s found (exports: %s)" % (name, ", ".join(sorted(self.exports)) or "none"))
                return self.exports[name]
            if k == "Fn::ToJsonString":
                return json.dumps(self.resolve(arg))
            if k.startswith("Fn::"):
                raise DeployError("intrinsic %s is not supported by tests/moto/stack_deployer.py" % k)
        out = {}
        for key, x in v.items():
            r = self.resolve(x)
            if r is not NO_VALUE:
                out[key] = r
        return out

    # ---- dependency order ----

    def deps(self, logical, resource, resources):
        depends = resource.get("DependsOn") or []
        found = set(depends if isinstance(depends, list) else [depends])

        def walk(x):
            if isinstance(x, list):
                for y in x:
                    walk(y)
            elif isinstance(x, dict):
                for k, y in x.items():
                    if k == "Ref" and isinstance(y, str) and y in resources:
                        found.add(y)
                    elif k == "Fn::GetAtt":
                        found.add(y[0] if isinstance(y, list) else y.split(".")[0])
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

    def order(self, template):
        resources = template["Resources"]
        done, out, visiting = set(), [], set()

        def visit(n):
            if n in done:
                return
            if n in visiting:
                raise DeployError("Circular dependency between resources: %s" % n)
            visiting.add(n)
            for d in sorted(self.deps(n, resources[n], resources)):
                if d not in resources:
                    raise DeployError("Template format error: Unresolved resource dependencies [%s] in the Resources block of the template" % d)
                visit(d)
            visiting.discard(n)
            done.add(n)
            out.append(n)
        for n in resources:
            visit(n)
        return out

    # ---- names ----

    def generated_name(self, logical, limit):
        """`<stack>-<logical>-<suffix>`, cut to `limit` as CloudFormation cuts it; the
        suffix is derived (not random) so that an update finds the same resource."""
        suffix = hashlib.sha256(("%s/%s/%s" % (self.region, self.name, logical)).encode()).hexdigest()[:12].upper()
        base = "%s-%s" % (self.name, logical)
        if len(base) <= limit:
            return base
        return "%s-%s" % (base[:limit - len(suffix) - 1], suffix)

    def physical_name(self, rtype, logical, props):
        key, limit = NAME_LIMITS[rtype]
        name = props.get(key)
        if name is None:
            return self.generated_name(logical, limit)
        if len(name) > limit:
            raise DeployError("%s: %s %r is %d characters; AWS allows at most %d"
                              % (logical, key, name, len(name), limit))
        return name

    # ---- the stack's life ----

    def apply(self, template, parameters, exports):
        """Creates the stack, or updates it to `template` with `parameters`."""
        if is_sam(template):
            template = sam_transform(template, parameters, self.region)
        old_template, old_resolved = self.template, dict(self.resolved)
        self.template = template
        self.exports = exports
        self.set_parameters(template, parameters)
        wanted = []
        for logical in self.order(template):
            r = template["Resources"][logical]
            if "Condition" in r and not self.condition(r["Condition"]):
                continue
            wanted.append(logical)
            props = self.resolve(r.get("Properties") or {})
            rtype = r["Type"]
            kind = KINDS.get(rtype)
            if kind is None:
                raise DeployError("%s: resource type %s is not emulated by tests/moto/stack_deployer.py; add it there" % (logical, rtype))
            before = old_resolved.get(logical)
            try:
                if before is not None and before["type"] == rtype:
                    if before["properties"] == props:
                        continue
                    out = kind.update(self, logical, props, before)
                    if out is None:  # needs replacement: a new one, then the old one goes
                        out = kind.create(self, logical, props)
                        if out[0] != before["physical_id"]:
                            kind.delete(self, logical, before)
                else:
                    if before is not None:
                        KINDS[before["type"]].delete(self, logical, before)
                    out = kind.create(self, logical, props)
            except DeployError:
                raise
            except Exception as e:  # boto3 / moto refused it: say which resource
                raise DeployError("%s (%s): %s" % (logical, rtype, e)) from e
            ref, attrs = out
            self.physical[logical] = ref
            self.attrs[logical] = attrs
            self.resolved[logical] = {"type": rtype, "properties": props, "physical_id": ref,
                                      "attributes": attrs,
                                      "deletion_policy": r.get("DeletionPolicy", "Delete")}
        gone = [l for l in self.order(old_template) if l in old_resolved and l not in wanted]
        for logical in reversed(gone):
            self.remove(logical, old_resolved[logical])

    def remove(self, logical, before):
        if before.get("deletion_policy") != "Retain":
            try:
                KINDS[before["type"]].delete(self, logical, before)
            except Exception as e:
                raise DeployError("%s (%s): cannot delete: %s" % (logical, before["type"], e)) from e
        self.resolved.pop(logical, None)
        self.physical.pop(logical, None)
        self.attrs.pop(logical, None)

    def delete_all(self):
        """Deletes every resource, dependents first; retained ones stay. Returns the
        retained ones: logical id -> (type, physical id)."""
        retained = {}
        for logical in reversed(self.order(self.template)):
            before = self.resolved.get(logical)
            if before is None:
                continue
            if before.get("deletion_policy") == "Retain":
                retained[logical] = (before["type"], before["physical_id"])
            self.remove(logical, before)
        return retained

    def outputs(self):
        out = {}
        for key, o in (self.template.get("Outputs") or {}).items():
            if "Condition" in o and not self.condition(o["Condition"]):
                continue
            entry = {"value": self.resolve(o["Value"]), "description": o.get("Description", "")}
            if "Export" in o:
                entry["export"] = self.resolve(o["Export"]["Name"])
            out[key] = entry
        return out

    def describe(self):
        functions = {}
        for logical, r in self.resolved.items():
            if r["type"] != "AWS::Lambda::Function":
                continue
            props = r["properties"]
            code = props.get("Code") or {}
            functions[logical] = {
                "name": r["physical_id"],
                "code": {"bucket": code.get("S3Bucket"), "key": code.get("S3Key")},
                "environment": {k: str(v) for k, v in (props.get("Environment") or {}).get("Variables", {}).items()},
                "timeout": int(props.get("Timeout", 3)),
                "memory": int(props.get("MemorySize", 128)),
                # Read back: what moto (Lambda) holds, not what the template asked.
                "reserved_concurrency": self.aws("lambda").get_function_concurrency(
                    FunctionName=r["physical_id"]).get("ReservedConcurrentExecutions"),
                "log_group": (props.get("LoggingConfig") or {}).get("LogGroup"),
            }
        mappings = []
        for logical, r in self.resolved.items():
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
        return {
            "stack": self.name,
            "region": self.region,
            "parameters": self.params,
            "conditions": self.conditions,
            "resources": self.resolved,
            "outputs": self.outputs(),
            "functions": functions,
            "event_source_mappings": mappings,
        }


# ---- resource kinds: create, update in place (None: needs replacement), delete ----

class Kind:
    def __init__(self, create, update=None, delete=None):
        self.create = create
        self.update = update or (lambda s, logical, p, before: None)
        self.delete = delete or (lambda s, logical, before: None)


def quiet(call, *allowed):
    try:
        return call()
    except Exception as e:  # already gone, or already so
        code = getattr(e, "response", {}).get("Error", {}).get("Code", "")
        if code in allowed or not allowed:
            return None
        raise


def table_settings(s, name, p):
    ddb = s.aws("dynamodb")
    if "TimeToLiveSpecification" in p:
        want = str(p["TimeToLiveSpecification"]["Enabled"]).lower() == "true"
        now = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"].get("TimeToLiveStatus")
        if want != (now in ("ENABLED", "ENABLING")):
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
                "AttributeName": p["TimeToLiveSpecification"]["AttributeName"], "Enabled": want})
    pitr = p.get("PointInTimeRecoverySpecification")
    if pitr:
        ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": str(pitr.get("PointInTimeRecoveryEnabled")).lower() == "true"})


def create_table(s, logical, p):
    ddb = s.aws("dynamodb")
    name = s.physical_name("AWS::DynamoDB::Table", logical, p)
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
    table_settings(s, name, p)
    return name, {"Arn": out["TableArn"], "StreamArn": out.get("LatestStreamArn", "")}


def update_table(s, logical, p, before):
    old = before["properties"]
    if s.physical_name("AWS::DynamoDB::Table", logical, p) != before["physical_id"] or \
            p.get("KeySchema") != old.get("KeySchema"):
        return None
    table_settings(s, before["physical_id"], p)
    return before["physical_id"], before["attributes"]


def delete_table(s, logical, before):
    quiet(lambda: s.aws("dynamodb").delete_table(TableName=before["physical_id"]), "ResourceNotFoundException")


def topic_attributes(p):
    attributes = {}
    if p.get("KmsMasterKeyId"):
        attributes["KmsMasterKeyId"] = p["KmsMasterKeyId"]
    return attributes


def create_topic(s, logical, p):
    name = s.physical_name("AWS::SNS::Topic", logical, p)
    topic = s.aws("sns").create_topic(Name=name, Attributes=topic_attributes(p))["TopicArn"]
    for sub in p.get("Subscription") or []:
        s.aws("sns").subscribe(TopicArn=topic, Protocol=sub["Protocol"], Endpoint=sub["Endpoint"])
    return topic, {"TopicArn": topic, "TopicName": name}


def update_topic(s, logical, p, before):
    if s.physical_name("AWS::SNS::Topic", logical, p) != before["attributes"]["TopicName"]:
        return None
    topic = before["physical_id"]
    s.aws("sns").set_topic_attributes(TopicArn=topic, AttributeName="KmsMasterKeyId",
                                      AttributeValue=p.get("KmsMasterKeyId", ""))
    return topic, before["attributes"]


def delete_topic(s, logical, before):
    quiet(lambda: s.aws("sns").delete_topic(TopicArn=before["physical_id"]))


def queue_attributes(p):
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
    return attributes


def create_queue(s, logical, p):
    name = s.physical_name("AWS::SQS::Queue", logical, p)
    url = s.aws("sqs").create_queue(QueueName=name, Attributes=queue_attributes(p))["QueueUrl"]
    qarn = s.aws("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, {"Arn": qarn, "QueueName": name, "QueueUrl": url}


def update_queue(s, logical, p, before):
    if s.physical_name("AWS::SQS::Queue", logical, p) != before["attributes"]["QueueName"]:
        return None
    attributes = queue_attributes(p)
    attributes.pop("FifoQueue", None)
    if attributes:
        s.aws("sqs").set_queue_attributes(QueueUrl=before["physical_id"], Attributes=attributes)
    return before["physical_id"], before["attributes"]


def delete_queue(s, logical, before):
    quiet(lambda: s.aws("sqs").delete_queue(QueueUrl=before["physical_id"]))


def set_queue_policy(s, logical, p):
    for url in p["Queues"]:
        s.aws("sqs").set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(p["PolicyDocument"])})
    return logical, {}


def delete_queue_policy(s, logical, before):
    for url in before["properties"]["Queues"]:
        quiet(lambda: s.aws("sqs").set_queue_attributes(QueueUrl=url, Attributes={"Policy": ""}))


def set_topic_policy(s, logical, p):
    for topic in p["Topics"]:
        s.aws("sns").set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(p["PolicyDocument"]))
    return logical, {}


def subscription_attributes(p):
    attributes = {}
    for key in ["RawMessageDelivery", "FilterPolicyScope", "DeliveryPolicy"]:
        if key in p:
            v = p[key]
            attributes[key] = str(v).lower() if isinstance(v, bool) else (json.dumps(v) if isinstance(v, dict) else str(v))
    for key in ["FilterPolicy", "RedrivePolicy"]:
        if key in p:
            attributes[key] = json.dumps(p[key]) if isinstance(p[key], dict) else p[key]
    return attributes


def create_subscription(s, logical, p):
    sub = s.aws("sns").subscribe(TopicArn=p["TopicArn"], Protocol=p["Protocol"], Endpoint=p["Endpoint"],
                                 Attributes=subscription_attributes(p), ReturnSubscriptionArn=True)["SubscriptionArn"]
    return sub, {}


def update_subscription(s, logical, p, before):
    old = before["properties"]
    if any(p.get(k) != old.get(k) for k in ("TopicArn", "Protocol", "Endpoint")):
        return None
    for key, value in subscription_attributes(p).items():
        s.aws("sns").set_subscription_attributes(SubscriptionArn=before["physical_id"], AttributeName=key, AttributeValue=value)
    return before["physical_id"], {}


def delete_subscription(s, logical, before):
    quiet(lambda: s.aws("sns").unsubscribe(SubscriptionArn=before["physical_id"]))


def versioned(document):
    # IAM takes a document without Version as 2008-10-17 (SAM's policy templates write
    # none); moto refuses it. The statements are what matter here.
    return dict(document, Version=document.get("Version", "2012-10-17"))


def role_policies(s, name, p, old=None):
    iam = s.aws("iam")
    for pol in p.get("Policies") or []:
        iam.put_role_policy(RoleName=name, PolicyName=pol["PolicyName"], PolicyDocument=json.dumps(versioned(pol["PolicyDocument"])))
    keep = {pol["PolicyName"] for pol in p.get("Policies") or []}
    for pol in (old or {}).get("Policies") or []:
        if pol["PolicyName"] not in keep:
            quiet(lambda: iam.delete_role_policy(RoleName=name, PolicyName=pol["PolicyName"]))
    # AWS-managed policies (ManagedPolicyArns) are recorded, not attached: moto only
    # knows them with MOTO_IAM_LOAD_MANAGED_POLICIES.


def create_role(s, logical, p):
    iam = s.aws("iam")
    name = s.physical_name("AWS::IAM::Role", logical, p)
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(p["AssumeRolePolicyDocument"]),
                           Path=p.get("Path", "/"))["Role"]
    role_policies(s, name, p)
    return name, {"Arn": role["Arn"], "RoleId": role["RoleId"]}


def update_role(s, logical, p, before):
    name = before["physical_id"]
    if s.physical_name("AWS::IAM::Role", logical, p) != name or p.get("Path", "/") != before["properties"].get("Path", "/"):
        return None
    s.aws("iam").update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(p["AssumeRolePolicyDocument"]))
    role_policies(s, name, p, before["properties"])
    return name, before["attributes"]


def delete_role(s, logical, before):
    iam = s.aws("iam")
    name = before["physical_id"]
    for pol in quiet(lambda: iam.list_role_policies(RoleName=name)["PolicyNames"]) or []:
        quiet(lambda: iam.delete_role_policy(RoleName=name, PolicyName=pol))
    quiet(lambda: iam.delete_role(RoleName=name))


def put_iam_policy(s, logical, p):
    iam = s.aws("iam")
    for role in p.get("Roles") or []:
        iam.put_role_policy(RoleName=role, PolicyName=p["PolicyName"], PolicyDocument=json.dumps(versioned(p["PolicyDocument"])))
    return logical, {}


def delete_iam_policy(s, logical, before):
    p = before["properties"]
    for role in p.get("Roles") or []:
        quiet(lambda: s.aws("iam").delete_role_policy(RoleName=role, PolicyName=p["PolicyName"]))


def function_code(p):
    code = p.get("Code") or {}
    if "S3Bucket" in code:
        out = {"S3Bucket": code["S3Bucket"], "S3Key": code["S3Key"]}
        if "S3ObjectVersion" in code:
            out["S3ObjectVersion"] = code["S3ObjectVersion"]
        return out
    if "ZipFile" in code:
        return {"ZipFile": code["ZipFile"].encode()}
    raise DeployError("a function's Code must be an S3 object (run `aws cloudformation package`) or ZipFile")


def function_configuration(p):
    args = dict(Runtime=p.get("Runtime", "provided.al2023"), Role=p["Role"], Handler=p.get("Handler", "bootstrap"),
                Timeout=int(p.get("Timeout", 3)), MemorySize=int(p.get("MemorySize", 128)),
                Environment={"Variables": {k: str(v) for k, v in (p.get("Environment") or {}).get("Variables", {}).items()}})
    if "TracingConfig" in p:
        args["TracingConfig"] = p["TracingConfig"]
    if "LoggingConfig" in p:
        args["LoggingConfig"] = p["LoggingConfig"]
    if "DeadLetterConfig" in p:
        args["DeadLetterConfig"] = p["DeadLetterConfig"]
    if "KmsKeyArn" in p:
        args["KMSKeyArn"] = p["KmsKeyArn"]
    return args


def function_concurrency(s, name, p):
    if "ReservedConcurrentExecutions" in p:
        s.aws("lambda").put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=int(p["ReservedConcurrentExecutions"]))
    else:
        quiet(lambda: s.aws("lambda").delete_function_concurrency(FunctionName=name))


def create_function(s, logical, p):
    name = s.physical_name("AWS::Lambda::Function", logical, p)
    args = function_configuration(p)
    if "Architectures" in p:
        args["Architectures"] = p["Architectures"]
    out = s.aws("lambda").create_function(FunctionName=name, Code=function_code(p), **args)
    function_concurrency(s, name, p)
    return name, {"Arn": out["FunctionArn"]}


def update_function(s, logical, p, before):
    name = before["physical_id"]
    if s.physical_name("AWS::Lambda::Function", logical, p) != name:
        return None
    lam = s.aws("lambda")
    if p.get("Code") != before["properties"].get("Code"):
        lam.update_function_code(FunctionName=name, **{k: v for k, v in function_code(p).items()})
    lam.update_function_configuration(FunctionName=name, **function_configuration(p))
    function_concurrency(s, name, p)
    return name, before["attributes"]


def delete_function(s, logical, before):
    quiet(lambda: s.aws("lambda").delete_function(FunctionName=before["physical_id"]))


def record_only(s, logical, p):
    # Event source mappings are run by the harness's pollers (honouring BatchSize and
    # ReportBatchItemFailures); permissions have nothing to emulate.
    return logical, {}


def put_event_invoke_config(s, logical, p):
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


def delete_event_invoke_config(s, logical, before):
    quiet(lambda: s.aws("lambda").delete_function_event_invoke_config(FunctionName=before["properties"]["FunctionName"]))


def state_machine_args(p):
    definition = p.get("DefinitionString")
    if definition is None:
        definition = json.dumps(p["Definition"])
    for key, value in (p.get("DefinitionSubstitutions") or {}).items():
        definition = definition.replace("${%s}" % key, str(value))
    args = dict(definition=definition, roleArn=p["RoleArn"])
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
    return args


def create_state_machine(s, logical, p):
    name = s.physical_name("AWS::StepFunctions::StateMachine", logical, p)
    out = s.aws("stepfunctions").create_state_machine(name=name, type=p.get("StateMachineType", "STANDARD"), **state_machine_args(p))
    return out["stateMachineArn"], {"Arn": out["stateMachineArn"], "Name": name}


def update_state_machine(s, logical, p, before):
    if s.physical_name("AWS::StepFunctions::StateMachine", logical, p) != before["attributes"]["Name"] or \
            p.get("StateMachineType", "STANDARD") != before["properties"].get("StateMachineType", "STANDARD"):
        return None
    s.aws("stepfunctions").update_state_machine(stateMachineArn=before["physical_id"], **state_machine_args(p))
    return before["physical_id"], before["attributes"]


def delete_state_machine(s, logical, before):
    quiet(lambda: s.aws("stepfunctions").delete_state_machine(stateMachineArn=before["physical_id"]))


def log_group_settings(s, name, p, old=None):
    logs = s.aws("logs")
    if "RetentionInDays" in p:
        logs.put_retention_policy(logGroupName=name, retentionInDays=int(p["RetentionInDays"]))
    elif old and "RetentionInDays" in old:
        logs.delete_retention_policy(logGroupName=name)


def create_log_group(s, logical, p):
    name = s.physical_name("AWS::Logs::LogGroup", logical, p)
    args = {"logGroupName": name}
    if p.get("KmsKeyId"):
        args["kmsKeyId"] = p["KmsKeyId"]
    s.aws("logs").create_log_group(**args)
    log_group_settings(s, name, p)
    return name, {"Arn": s.arn("logs", "log-group:%s:*" % name)}


def update_log_group(s, logical, p, before):
    name = before["physical_id"]
    # A new key is AssociateKmsKey on AWS (in place); moto lacks that call, so here the
    # group is made again with the key (the same name and settings; its logs go).
    if s.physical_name("AWS::Logs::LogGroup", logical, p) != name or p.get("KmsKeyId") != before["properties"].get("KmsKeyId"):
        delete_log_group(s, logical, before)
        return create_log_group(s, logical, p)
    log_group_settings(s, name, p, before["properties"])
    return name, before["attributes"]


def delete_log_group(s, logical, before):
    quiet(lambda: s.aws("logs").delete_log_group(logGroupName=before["physical_id"]))


def put_alarm(s, logical, p):
    name = s.physical_name("AWS::CloudWatch::Alarm", logical, p)
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
    return name, {"Arn": s.arn("cloudwatch", "alarm:%s" % name)}


def update_alarm(s, logical, p, before):
    if s.physical_name("AWS::CloudWatch::Alarm", logical, p) != before["physical_id"]:
        return None
    return put_alarm(s, logical, p)


def delete_alarm(s, logical, before):
    quiet(lambda: s.aws("cloudwatch").delete_alarms(AlarmNames=[before["physical_id"]]))


def create_key(s, logical, p):
    args = {"Description": p.get("Description", logical)}
    if "KeyPolicy" in p:
        args["Policy"] = json.dumps(p["KeyPolicy"])
    key = s.aws("kms").create_key(**args)["KeyMetadata"]
    if p.get("EnableKeyRotation"):
        s.aws("kms").enable_key_rotation(KeyId=key["KeyId"])
    return key["KeyId"], {"Arn": key["Arn"], "KeyId": key["KeyId"]}


def update_key(s, logical, p, before):
    if "KeyPolicy" in p:
        s.aws("kms").put_key_policy(KeyId=before["physical_id"], PolicyName="default", Policy=json.dumps(p["KeyPolicy"]))
    return before["physical_id"], before["attributes"]


def delete_key(s, logical, before):
    quiet(lambda: s.aws("kms").schedule_key_deletion(KeyId=before["physical_id"], PendingWindowInDays=7))


def create_alias(s, logical, p):
    s.aws("kms").create_alias(AliasName=p["AliasName"], TargetKeyId=p["TargetKeyId"])
    return p["AliasName"], {}


def update_alias(s, logical, p, before):
    if p["AliasName"] != before["physical_id"]:
        return None
    s.aws("kms").update_alias(AliasName=p["AliasName"], TargetKeyId=p["TargetKeyId"])
    return p["AliasName"], {}


def delete_alias(s, logical, before):
    quiet(lambda: s.aws("kms").delete_alias(AliasName=before["physical_id"]))


def put_rule(s, logical, p):
    ev = s.aws("events")
    name = s.physical_name("AWS::Events::Rule", logical, p)
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
    bus = {"EventBusName": p["EventBusName"]} if "EventBusName" in p else {}
    targets = []
    for t in p.get("Targets") or []:
        target = {"Id": t["Id"], "Arn": t["Arn"]}
        for key in ["RoleArn", "Input", "InputPath", "DeadLetterConfig", "RetryPolicy"]:
            if key in t:
                target[key] = t[key]
        targets.append(target)
    existing = [t["Id"] for t in ev.list_targets_by_rule(Rule=name, **bus).get("Targets", [])]
    stale = [i for i in existing if i not in {t["Id"] for t in targets}]
    if stale:
        ev.remove_targets(Rule=name, Ids=stale, **bus)
    if targets:
        ev.put_targets(Rule=name, Targets=targets, **bus)
    return name, {"Arn": rule_arn}


def update_rule(s, logical, p, before):
    if s.physical_name("AWS::Events::Rule", logical, p) != before["physical_id"] or \
            p.get("EventBusName") != before["properties"].get("EventBusName"):
        return None
    return put_rule(s, logical, p)


def delete_rule(s, logical, before):
    ev = s.aws("events")
    bus = {"EventBusName": before["properties"]["EventBusName"]} if "EventBusName" in before["properties"] else {}
    name = before["physical_id"]
    ids = [t["Id"] for t in (quiet(lambda: ev.list_targets_by_rule(Rule=name, **bus)) or {}).get("Targets", [])]
    if ids:
        quiet(lambda: ev.remove_targets(Rule=name, Ids=ids, **bus))
    quiet(lambda: ev.delete_rule(Name=name, **bus))


KINDS = {
    "AWS::DynamoDB::Table": Kind(create_table, update_table, delete_table),
    "AWS::SNS::Topic": Kind(create_topic, update_topic, delete_topic),
    "AWS::SNS::TopicPolicy": Kind(set_topic_policy, lambda s, l, p, b: set_topic_policy(s, l, p)),
    "AWS::SNS::Subscription": Kind(create_subscription, update_subscription, delete_subscription),
    "AWS::SQS::Queue": Kind(create_queue, update_queue, delete_queue),
    "AWS::SQS::QueuePolicy": Kind(set_queue_policy, lambda s, l, p, b: set_queue_policy(s, l, p), delete_queue_policy),
    "AWS::IAM::Role": Kind(create_role, update_role, delete_role),
    "AWS::IAM::Policy": Kind(put_iam_policy, lambda s, l, p, b: put_iam_policy(s, l, p), delete_iam_policy),
    "AWS::Lambda::Function": Kind(create_function, update_function, delete_function),
    "AWS::Lambda::EventSourceMapping": Kind(record_only, lambda s, l, p, b: record_only(s, l, p)),
    "AWS::Lambda::Permission": Kind(record_only, lambda s, l, p, b: record_only(s, l, p)),
    "AWS::Lambda::EventInvokeConfig": Kind(put_event_invoke_config, lambda s, l, p, b: put_event_invoke_config(s, l, p),
                                           delete_event_invoke_config),
    "AWS::StepFunctions::StateMachine": Kind(create_state_machine, update_state_machine, delete_state_machine),
    "AWS::Logs::LogGroup": Kind(create_log_group, update_log_group, delete_log_group),
    "AWS::CloudWatch::Alarm": Kind(put_alarm, update_alarm, delete_alarm),
    "AWS::KMS::Key": Kind(create_key, update_key, delete_key),
    "AWS::KMS::Alias": Kind(create_alias, update_alias, delete_alias),
    "AWS::Events::Rule": Kind(put_rule, update_rule, delete_rule),
}
