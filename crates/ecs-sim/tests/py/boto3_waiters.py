"""Drives the simulator with boto3, a client nobody on this project
wrote: its `services_stable` and `tasks_stopped` waiters must succeed, and
its error parsing must recognise the simulator's errors.

Usage: python boto3_waiters.py URL
"""
import sys

import boto3
import botocore.exceptions

url = sys.argv[1]
kw = dict(endpoint_url=url, region_name="us-east-1",
          aws_access_key_id="test", aws_secret_access_key="test")
ecs = boto3.client("ecs", **kw)
aas = boto3.client("application-autoscaling", **kw)
fast = {"Delay": 1, "MaxAttempts": 30}

ecs.create_cluster(clusterName="prod")
ecs.register_task_definition(
    family="web",
    containerDefinitions=[{
        "name": "app", "image": "nginx:1",
        "healthCheck": {"command": ["CMD-SHELL", "true"]},
    }],
)
ecs.create_service(cluster="prod", serviceName="web", taskDefinition="web", desiredCount=3)
ecs.get_waiter("services_stable").wait(cluster="prod", services=["web"], WaiterConfig=fast)

service = ecs.describe_services(cluster="prod", services=["web"])["services"][0]
assert service["runningCount"] == 3, service
assert len(service["deployments"]) == 1, service

paginator = ecs.get_paginator("list_tasks")
arns = [a for page in paginator.paginate(cluster="prod", serviceName="web", PaginationConfig={"PageSize": 2})
        for a in page["taskArns"]]
assert len(arns) == 3, arns

ecs.stop_task(cluster="prod", task=arns[0], reason="boto3 test")
ecs.get_waiter("tasks_stopped").wait(cluster="prod", tasks=[arns[0]], WaiterConfig=fast)
task = ecs.describe_tasks(cluster="prod", tasks=[arns[0]])["tasks"][0]
assert task["lastStatus"] == "STOPPED" and task["stoppedReason"] == "boto3 test", task
ecs.get_waiter("services_stable").wait(cluster="prod", services=["web"], WaiterConfig=fast)
running = ecs.list_tasks(cluster="prod", serviceName="web")["taskArns"]
assert len(running) == 3 and arns[0] not in running, running

aas.register_scalable_target(ServiceNamespace="ecs", ResourceId="service/prod/web",
                             ScalableDimension="ecs:service:DesiredCount", MinCapacity=1, MaxCapacity=5,
                             SuspendedState={"DynamicScalingInSuspended": True})
target = aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"][0]
assert target["SuspendedState"]["DynamicScalingInSuspended"] is True, target

try:
    ecs.describe_services(cluster="nowhere", services=["web"])
    raise AssertionError("expected ClusterNotFoundException")
except ecs.exceptions.ClusterNotFoundException:
    pass
try:
    aas.deregister_scalable_target(ServiceNamespace="ecs", ResourceId="service/prod/ghost",
                                   ScalableDimension="ecs:service:DesiredCount")
    raise AssertionError("expected ObjectNotFoundException")
except aas.exceptions.ObjectNotFoundException:
    pass
try:
    ecs.list_tasks(cluster="prod", maxResults=500)
    raise AssertionError("expected InvalidParameterException")
except botocore.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "InvalidParameterException", e.response

print("boto3: waiters and errors ok")
