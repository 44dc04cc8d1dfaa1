"""Deploys infra/monitoring.yaml on moto's CloudFormation with boto3 and
prints, as one JSON document for the Rust test: the stack's status,
outputs, resources made and declared, the dashboard's body as CloudWatch
holds it (intrinsic functions resolved), and the template as read. (moto's
CloudFormation makes no AWS::CloudWatch::Alarm, AWS::SNS::TopicPolicy or
AWS::SNS::Subscription: they are missing from the resources made.)

Usage: python cfn_monitoring.py MOTO_URL INFRA_DIR PARAMS_JSON
"""
import json
import sys

import boto3
import yaml
from moto.cloudformation.utils import yaml_tag_constructor

url, infra, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
kw = dict(endpoint_url=url, region_name="us-east-1",
          aws_access_key_id="test", aws_secret_access_key="test")
cfn = boto3.client("cloudformation", **kw)
cloudwatch = boto3.client("cloudwatch", **kw)

yaml.add_multi_constructor("", yaml_tag_constructor)
with open(f"{infra}/monitoring.yaml") as f:
    body = f.read()
template = yaml.load(body, Loader=yaml.Loader)

cfn.create_stack(
    StackName="ecs-recycler-monitoring",
    TemplateBody=body,
    Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
)
cfn.get_waiter("stack_create_complete").wait(
    StackName="ecs-recycler-monitoring", WaiterConfig={"Delay": 1, "MaxAttempts": 60})

stack = cfn.describe_stacks(StackName="ecs-recycler-monitoring")["Stacks"][0]
resources = [r for r in cfn.describe_stack_resources(StackName="ecs-recycler-monitoring")["StackResources"]
             if "LogicalResourceId" in r]
outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
out = {
    "status": stack["StackStatus"],
    "outputs": outputs,
    "resources": {r["LogicalResourceId"]: r["ResourceType"] for r in resources},
    "declared": {k: r["Type"] for k, r in template["Resources"].items()},
    "dashboard": json.loads(cloudwatch.get_dashboard(DashboardName=outputs["DashboardName"])["DashboardBody"]),
    "template": template,
}
print(json.dumps(out, default=str))
