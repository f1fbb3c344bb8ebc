"""moto's CloudFormation API, with CloudFormation's work done by `stack_deployer`.

`aws cloudformation deploy` (what `make deploy` runs) talks to moto as to AWS: change sets,
templates uploaded to S3 (TemplateURL), stack events, outputs and exports, updates and
deletion. moto keeps the API; each stack's resources are created, updated and deleted by
`stack_deployer.Deployment`, which runs the SAM transform and creates every resource with
the template's own properties (moto's own CloudFormation skips what it does not model).

What AWS enforces and moto does not, enforced here (AWS's behaviour, each):
- a TemplateBody over 51,200 bytes is refused (a bigger template must go through S3);
- a template in S3 over 1 MB is refused;
- a parameter value over 4,096 bytes, explicit names over their type's length limit;
- an unchanged change set is a FAILED change set, not a refused call;
- a failed creation rolls back (ROLLBACK_COMPLETE, resources deleted), a failed update
  rolls back to what was deployed before (UPDATE_ROLLBACK_COMPLETE); the reason is a stack
  event, as `describe-stack-events` shows it.

The deployment of every stack is served at GET /moto-api/deepalert/stacks/<region>/<name>
(what `stack_deployer.Deployment.describe` gives: functions, their code and environment,
event source mappings), for the harness that runs the functions.
"""
import collections.abc
import json
import threading
import urllib.parse

from moto.cloudformation import models as cfn_models
from moto.cloudformation import responses as cfn_responses
from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.parsing import Export, Output

from stack_deployer import DeployError, Deployment

TEMPLATE_BODY_LIMIT = 51200
TEMPLATE_URL_LIMIT = 1024 * 1024
STATE = {"endpoint": None}
LOCK = threading.RLock()
DEPLOYMENTS = {}  # (region, stack name) -> Deployment, of stacks that exist


class Resource:
    """What moto's DescribeStackResources and ListStackResources read of a resource."""

    def __init__(self, logical, rtype, physical):
        self.logical_resource_id = logical
        self.cf_resource_type = rtype
        self.physical_resource_id = physical


class DeployedResources(collections.abc.Mapping):
    """Stands in for moto's ResourceMap: the stack's resources as `Deployment` made them."""

    def __init__(self, stack):
        self.stack = stack
        self.deployment = Deployment(stack.name, STATE["endpoint"], stack.region_name, stack.account_id)
        self.resolved_parameters = {}
        self.no_echo_parameter_keys = []
        self.deployed = False

    def __getitem__(self, logical):
        r = self.deployment.resolved[logical]
        return Resource(logical, r["type"], r["physical_id"])

    def __iter__(self):
        return iter(list(self.deployment.resolved))

    def __len__(self):
        return len(self.deployment.resolved)

    def load(self):
        pass

    def creation_complete(self):
        return True

    def build_change_set_actions(self, template):
        new = set((template.get("Resources") or {}))
        old = set((self.deployment.template.get("Resources") or {})) if self.deployed else set()
        kinds = template.get("Resources") or {}
        return {
            "Add": {n: {"ResourceType": kinds[n].get("Type")} for n in sorted(new - old)},
            "Modify": {n: {"ResourceType": kinds[n].get("Type")} for n in sorted(new & old)},
            "Remove": {n: {"ResourceType": "?"} for n in sorted(old - new)},
        }

    def exports_of_others(self):
        backend = cfn_models.cloudformation_backends[self.stack.account_id][self.stack.region_name]
        out = {}
        for other in backend.stacks.values():
            if other is not self.stack and isinstance(other.resource_map, DeployedResources):
                for e in other.exports:
                    out[e.name] = e.value
        return out

    def apply(self, template, parameters):
        with LOCK:
            self.deployment.apply(template, dict(parameters or {}), self.exports_of_others())
            self.deployed = True
            self.resolved_parameters = {k: ",".join(v) if isinstance(v, list) else v
                                        for k, v in self.deployment.params.items()}
            DEPLOYMENTS[(self.stack.region_name, self.stack.name)] = self.deployment

    def create(self, template):
        self.apply(template, self.stack.parameters)
        return True

    def update(self, template, parameters=None):
        self.apply(template, parameters if parameters is not None else self.stack.parameters)

    def delete(self):
        with LOCK:
            self.deployment.delete_all()
            DEPLOYMENTS.pop((self.stack.region_name, self.stack.name), None)


class DeployedOutputs(collections.abc.Mapping):
    """Stands in for moto's OutputMap."""

    def __init__(self, resources, stack_id):
        self.resources = resources
        self.stack_id = stack_id

    def _outputs(self):
        if not self.resources.deployed:
            return {}
        return self.resources.deployment.outputs()

    def __getitem__(self, key):
        o = self._outputs()[key]
        return Output(key, o["value"], o.get("description", ""))

    def __iter__(self):
        return iter(self._outputs())

    def __len__(self):
        return len(self._outputs())

    @property
    def exports(self):
        return [Export(self.stack_id, o["export"], o["value"]) for o in self._outputs().values() if "export" in o]


def create_resource_map(self):
    return DeployedResources(self)


def create_output_map(self):
    return DeployedOutputs(self.resource_map, self.stack_id)


def fail_stack(stack, status, reason):
    stack.status = status
    stack._add_stack_event(status, resource_status_reason=reason)


def execute_change_set(self, change_set_name, stack_name=None):
    change_set = self.change_sets.get(change_set_name) or next(
        (c for c in self.change_sets.values() if c.change_set_name == change_set_name), None)
    if change_set is None:
        raise ValidationError(stack_name)
    stack = self.stacks[change_set.stack_id]
    resources = stack.resource_map
    creating = change_set.change_set_type == "CREATE"
    before = (resources.deployment.template, dict(resources.deployment.params)) if not creating else None
    stack._add_stack_event("CREATE_IN_PROGRESS" if creating else "UPDATE_IN_PROGRESS",
                           resource_status_reason="User Initiated")
    change_set.execution_status = "EXECUTE_COMPLETE"
    try:
        change_set.apply()
    except DeployError as e:
        # As CloudFormation: the reason is a stack event, the stack rolls back.
        if creating:
            stack._add_stack_event("CREATE_FAILED", resource_status_reason=str(e))
            try:
                resources.delete()
            except DeployError:
                pass
            fail_stack(stack, "ROLLBACK_COMPLETE", str(e))
        else:
            stack._add_stack_event("UPDATE_FAILED", resource_status_reason=str(e))
            try:
                resources.update(before[0], before[1])
            except DeployError:
                pass
            fail_stack(stack, "UPDATE_ROLLBACK_COMPLETE", str(e))
        return
    stack.template = change_set.template
    stack._parse_template()
    stack.parameters = change_set.parameters
    stack.status = "%s_COMPLETE" % change_set.change_set_type
    stack._add_stack_event(stack.status)


def parse_template(text):
    """JSON, or YAML with CloudFormation's short-form tags (read as AWS reads them; moto's
    own reader leaves some nested forms half-built)."""
    if isinstance(text, dict):
        return text
    try:
        return json.loads(text)
    except ValueError:
        from samtranslator.yaml_helper import yaml_parse
        return yaml_parse(text)


def apply_change_set(self):
    self.stack.resource_map.update(parse_template(self.template), self.parameters)


def create_resources(self):
    self.status = "CREATE_IN_PROGRESS"
    try:
        self.resource_map.create(parse_template(self.template))
    except DeployError as e:
        self._add_stack_event("CREATE_FAILED", resource_status_reason=str(e))
        try:
            self.resource_map.delete()
        except DeployError:
            pass
        fail_stack(self, "ROLLBACK_COMPLETE", str(e))
        return
    self.description = self.template_dict.get("Description")
    self.mark_creation_complete()


def create_stack(self, name, template, parameters, **kw):
    check_body(template)
    return ORIGINAL["create_stack"](self, name, template, parameters, **kw)


def create_change_set(self, stack_name, change_set_name, template, parameters, *args, **kw):
    check_body(template)
    return ORIGINAL["create_change_set"](self, stack_name, change_set_name, template, parameters, *args, **kw)


def check_body(template):
    if template and len(template.encode("utf-8")) > TEMPLATE_URL_LIMIT:
        raise ValidationError(message="Template may not exceed 1048576 bytes in size.")


def delete_stack(self, name_or_stack_id):
    for stack in list(self.stacks.values()):
        if name_or_stack_id in (stack.stack_id, stack.name):
            self.stacks.pop(stack.stack_id)
            for export in stack.exports:
                self.exports.pop(export.name, None)
            stack.delete()
            self.deleted_stacks[stack.stack_id] = stack


def list_exports(self, tokenstr):
    exports = [e for s in self.stacks.values() for e in s.exports]
    return exports, None


def get_stack_from_s3_url(template_url, account_id, partition):
    """Any S3 URL the AWS CLI writes, path style on any endpoint (moto's own only knows
    localhost and amazonaws.com)."""
    from moto.s3.models import s3_backends
    url = urllib.parse.urlparse(template_url)
    host = url.netloc.split(":")[0]
    if host.startswith("s3") or host[0].isdigit() or host == "localhost" or "." not in host:
        bucket, key = url.path.lstrip("/").split("/", 1)
    else:
        bucket, key = host.split(".")[0], url.path.lstrip("/")
    body = s3_backends[account_id][partition].get_object(bucket, urllib.parse.unquote(key)).value
    if len(body) > TEMPLATE_URL_LIMIT:
        raise ValidationError(message="Template may not exceed 1048576 bytes in size.")
    return body.decode("utf-8")


def template_body_limit(handler):
    def checked(self, *a, **kw):
        body = self._get_param("TemplateBody")
        if body and len(body.encode("utf-8")) > TEMPLATE_BODY_LIMIT:
            raise ValidationError(message="1 validation error detected: Value at 'templateBody' failed to satisfy "
                                          "constraint: Member must have length less than or equal to 51200")
        return handler(self, *a, **kw)
    return checked


def validate_different_update(self, *args):
    # AWS answers an unchanged CreateChangeSet with a FAILED change set ("didn't contain
    # changes", which `deploy --no-fail-on-empty-changeset` accepts); moto refuses the
    # call. Only UpdateStack says "No updates are to be performed".
    if self._get_param("ChangeSetName"):
        return None
    return ORIGINAL["validate_different_update"](self, *args)


ORIGINAL = {}


def install(endpoint):
    STATE["endpoint"] = endpoint
    ORIGINAL["create_stack"] = cfn_models.CloudFormationBackend.create_stack
    ORIGINAL["create_change_set"] = cfn_models.CloudFormationBackend.create_change_set
    cfn_models.Stack._create_resource_map = create_resource_map
    cfn_models.Stack._create_output_map = create_output_map
    cfn_models.Stack.create_resources = create_resources
    cfn_models.ChangeSet.apply = apply_change_set
    cfn_models.CloudFormationBackend.execute_change_set = execute_change_set
    cfn_models.CloudFormationBackend.delete_stack = delete_stack
    cfn_models.CloudFormationBackend.list_exports = list_exports
    cfn_models.CloudFormationBackend.create_stack = create_stack
    cfn_models.CloudFormationBackend.create_change_set = create_change_set
    cfn_responses.get_stack_from_s3_url = get_stack_from_s3_url
    ORIGINAL["validate_different_update"] = cfn_responses.CloudFormationResponse._validate_different_update
    cfn_responses.CloudFormationResponse._validate_different_update = validate_different_update
    for action in ("create_stack", "create_change_set", "update_stack", "validate_template"):
        setattr(cfn_responses.CloudFormationResponse, action,
                template_body_limit(getattr(cfn_responses.CloudFormationResponse, action)))


def described(region, name):
    with LOCK:
        d = DEPLOYMENTS.get((region, name))
        return None if d is None else json.dumps(d.describe(), default=str).encode()
