"""Deploys infra/table.yaml and infra/operator.yaml on moto's CloudFormation
with boto3, as `aws cloudformation deploy` would (create, wait, read the
outputs), and prints what the stacks made as one JSON document for the Rust
test to check: each stack's status, outputs, resources made and resources
declared, the task and execution roles' policies as IAM holds them
(intrinsic functions resolved), the task definition and the service as
moto's ECS holds them, moto's warnings, and both templates as read.

Usage: python cfn_stacks.py MOTO_URL INFRA_DIR PARAMS_JSON
PARAMS_JSON: {"table": {...}, "operator": {...}, "variants": [{...}, ...]}
template parameters; the operator's Subnets, SecurityGroups and
OperatorCluster are made here in moto. Each variant is the operator's
parameters with those changes, deployed as a stack of its own (what it made,
its task role's policies and its container's environment are answered in
"variants"). The events rule (its pattern and targets) and the events
queues' attributes are answered as moto holds them.
"""
import ast
import json
import sys
import warnings

import boto3

url, infra, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
kw = dict(endpoint_url=url, region_name="us-east-1",
          aws_access_key_id="test", aws_secret_access_key="test")
cfn = boto3.client("cloudformation", **kw)
ec2 = boto3.client("ec2", **kw)
ecs = boto3.client("ecs", **kw)
events = boto3.client("events", **kw)
iam = boto3.client("iam", **kw)
sqs = boto3.client("sqs", **kw)


def load_template(name):
    """The template as moto reads it (short-form tags become Fn:: maps)."""
    import yaml
    from moto.cloudformation.utils import yaml_tag_constructor

    yaml.add_multi_constructor("", yaml_tag_constructor)
    with open(f"{infra}/{name}") as f:
        return yaml.load(f, Loader=yaml.Loader)


def deploy(name, template, parameters):
    with open(f"{infra}/{template}") as f:
        body = f.read()
    cfn.create_stack(
        StackName=name,
        TemplateBody=body,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    cfn.get_waiter("stack_create_complete").wait(
        StackName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    # moto lists a resource whose Condition is false as an entry with no
    # logical id; such entries are left out.
    resources = [r for r in cfn.describe_stack_resources(StackName=name)["StackResources"]
                 if "LogicalResourceId" in r]
    return {
        "status": stack["StackStatus"],
        "outputs": {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        "resources": {r["LogicalResourceId"]: {"type": r["ResourceType"],
                                               "status": r["ResourceStatus"],
                                               "physicalId": r.get("PhysicalResourceId")}
                      for r in resources},
        "declared": {k: r["Type"] for k, r in load_template(template)["Resources"].items()},
    }


def document(doc):
    """A policy document as IAM answered it. moto 5.2.5 keeps the inline
    policies of an AWS::IAM::Role made by CloudFormation as Python's repr of
    the dict, not as JSON, so that is read too."""
    if not isinstance(doc, str):
        return doc
    try:
        return json.loads(doc)
    except json.JSONDecodeError:
        return ast.literal_eval(doc)


def role_policies(role_name):
    """Every policy document on a role: inline ones and attached ones."""
    docs = {}
    for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        docs[name] = document(
            iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"])
    for attached in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]:
        policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
        version = iam.get_policy_version(PolicyArn=attached["PolicyArn"],
                                         VersionId=policy["DefaultVersionId"])
        docs[attached["PolicyName"]] = document(version["PolicyVersion"]["Document"])
    return docs


with warnings.catch_warnings(record=True) as skipped:
    warnings.simplefilter("always")
    out = {"table": deploy("ecs-recycler-table", "table.yaml", params["table"])}

    # What an account has before the operator stack: a cluster for it and a network.
    ecs.create_cluster(clusterName="ops")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24")["Subnet"]["SubnetId"]
               for i in (1, 2)]
    group = ec2.create_security_group(GroupName="ecs-recycler", Description="operator",
                                      VpcId=vpc)["GroupId"]
    operator_params = dict(params["operator"], OperatorCluster="ops",
                           Subnets=",".join(subnets), SecurityGroups=group)
    out["operator"] = deploy("ecs-recycler", "operator.yaml", operator_params)
    variants = [(f"ecs-recycler-v{i}", deploy(f"ecs-recycler-v{i}", "operator.yaml",
                                               dict(operator_params, **changes)))
                for i, changes in enumerate(params.get("variants", []))]

resources = out["operator"]["resources"]
role_name = lambda resources, logical: resources[logical]["physicalId"].split("/")[-1]
out["taskRole"] = iam.get_role(RoleName=role_name(resources, "TaskRole"))["Role"]
out["taskRolePolicies"] = role_policies(role_name(resources, "TaskRole"))
out["executionRolePolicies"] = role_policies(role_name(resources, "ExecutionRole"))
task_definition = resources["TaskDefinition"]["physicalId"]
out["taskDefinition"] = ecs.describe_task_definition(taskDefinition=task_definition)["taskDefinition"]
if "EcsEventsRule" in resources:
    rule = resources["EcsEventsRule"]["physicalId"]
    out["eventsRule"] = dict(events.describe_rule(Name=rule),
                             Targets=events.list_targets_by_rule(Rule=rule)["Targets"])
    out["eventsQueues"] = {
        logical: sqs.get_queue_attributes(QueueUrl=resources[logical]["physicalId"],
                                          AttributeNames=["All"])["Attributes"]
        for logical in ("EcsEventsQueue", "EventsDeadLetterQueue")}
out["variants"] = []
for name, made in variants:
    vr = made["resources"]
    definition = ecs.describe_task_definition(
        taskDefinition=vr["TaskDefinition"]["physicalId"])["taskDefinition"]
    out["variants"].append({
        "status": made["status"],
        "resources": sorted(vr),
        "taskRolePolicies": role_policies(role_name(vr, "TaskRole")),
        # moto 5.2.5 keeps a list element that Fn::If turned into
        # AWS::NoValue as null, where CloudFormation drops it.
        "environment": {e["name"]: e["value"]
                        for e in definition["containerDefinitions"][0]["environment"] if e},
    })
out["service"] = ecs.describe_services(
    cluster="ops", services=[out["operator"]["outputs"]["ServiceArn"]])["services"][0]
out["warnings"] = [str(w.message) for w in skipped]
out["templates"] = {"table": load_template("table.yaml"), "operator": load_template("operator.yaml")}
print(json.dumps(out, default=str))
