"""Drives the simulator's Elastic Load Balancing v2 with boto3: a load
balancer, a target group and a listener; targets registered, healthy,
drained and gone, with boto3's own `target_in_service` and
`target_deregistered` waiters; errors parsed as boto3 parses AWS's.

The simulator runs with targetTimeScale 20: a 5 s health-check interval
takes 250 ms.

Usage: python boto3_elb.py URL
"""
import sys

import boto3
from botocore.config import Config

url = sys.argv[1]
kw = dict(endpoint_url=url, region_name="us-east-1",
          aws_access_key_id="test", aws_secret_access_key="test")
elb = boto3.client("elbv2", **kw)
fast = {"Delay": 1, "MaxAttempts": 20}
# boto3 checks ranges itself; this one sends what it is given, for the
# simulator's own validation.
raw = boto3.client("elbv2", config=Config(parameter_validation=False), **kw)

lb = elb.create_load_balancer(Name="web-lb", Subnets=["subnet-1", "subnet-2"], Type="application")
lb = lb["LoadBalancers"][0]
assert lb["Type"] == "application" and lb["State"]["Code"] == "active", lb
assert lb["DNSName"].startswith("web-lb-") and lb["DNSName"].endswith(".us-east-1.elb.amazonaws.com"), lb
assert elb.describe_load_balancers(Names=["web-lb"])["LoadBalancers"][0]["LoadBalancerArn"] == lb["LoadBalancerArn"]

tg = elb.create_target_group(
    Name="web", Protocol="HTTP", Port=80, VpcId="vpc-0a1b2c3d4e5f60718", TargetType="ip",
    HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2,
    HealthyThresholdCount=2, UnhealthyThresholdCount=2,
)["TargetGroups"][0]
arn = tg["TargetGroupArn"]
assert arn.startswith("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/"), arn
assert (tg["HealthCheckIntervalSeconds"], tg["HealthyThresholdCount"], tg["TargetType"]) == (5, 2, "ip"), tg
# Creating it again with the same settings is no error: the same group.
again = elb.create_target_group(
    Name="web", Protocol="HTTP", Port=80, VpcId="vpc-0a1b2c3d4e5f60718", TargetType="ip",
    HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2,
    HealthyThresholdCount=2, UnhealthyThresholdCount=2,
)["TargetGroups"][0]
assert again["TargetGroupArn"] == arn, again

# No load balancer sends it traffic yet: its targets are unused.
elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": "10.1.0.1"}])
h = elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
assert [d["TargetHealth"]["Reason"] for d in h] == ["Target.NotInUse"], h
assert h[0]["TargetHealth"]["State"] == "unused" and h[0]["Target"]["Port"] == 80, h

listener = elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
                               DefaultActions=[{"Type": "forward", "TargetGroupArn": arn}])["Listeners"][0]
listed = elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
assert [l["ListenerArn"] for l in listed] == [listener["ListenerArn"]], listed
assert listed[0]["DefaultActions"][0]["TargetGroupArn"] == arn, listed
groups = elb.describe_target_groups(LoadBalancerArn=lb["LoadBalancerArn"])["TargetGroups"]
assert [g["LoadBalancerArns"] for g in groups] == [[lb["LoadBalancerArn"]]], groups

attrs = {a["Key"]: a["Value"] for a in elb.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]}
assert attrs["deregistration_delay.timeout_seconds"] == "300", attrs
elb.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[
    {"Key": "deregistration_delay.timeout_seconds", "Value": "20"}])

# Checked now: initial first, then healthy.
first = elb.describe_target_health(TargetGroupArn=arn, Targets=[{"Id": "10.1.0.1", "Port": 80}])
first = first["TargetHealthDescriptions"][0]
assert first["TargetHealth"]["State"] == "initial", first
assert first["TargetHealth"]["Reason"] in ("Elb.RegistrationInProgress", "Elb.InitialHealthChecking"), first
assert first["HealthCheckPort"] == "80", first
elb.get_waiter("target_in_service").wait(TargetGroupArn=arn, Targets=[{"Id": "10.1.0.1", "Port": 80}],
                                         WaiterConfig=fast)
healthy = elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"][0]["TargetHealth"]
assert healthy == {"State": "healthy"}, healthy

elb.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": "10.1.0.1", "Port": 80}])
draining = elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"][0]["TargetHealth"]
assert draining["State"] == "draining" and draining["Reason"] == "Target.DeregistrationInProgress", draining
elb.get_waiter("target_deregistered").wait(TargetGroupArn=arn, Targets=[{"Id": "10.1.0.1", "Port": 80}],
                                           WaiterConfig=fast)
assert elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"] == []
gone = elb.describe_target_health(TargetGroupArn=arn, Targets=[{"Id": "10.9.9.9"}])["TargetHealthDescriptions"]
assert gone[0]["TargetHealth"]["Reason"] == "Target.NotRegistered" and gone[0]["TargetHealth"]["State"] == "unused", gone


def code_of(call, **kwargs):
    try:
        call(**kwargs)
    except raw.exceptions.ClientError as e:
        return e.response["Error"]["Code"], e.response["Error"]["Message"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError(f"{call.__name__} succeeded")


missing = arn.replace("/web/", "/ghost/")
try:
    elb.describe_target_health(TargetGroupArn=missing)
    raise AssertionError("expected TargetGroupNotFound")
except elb.exceptions.TargetGroupNotFoundException as e:
    assert e.response["Error"]["Message"] == "One or more target groups not found", e.response
code, message, status = code_of(raw.create_target_group, Name="slow", Protocol="HTTP", Port=80,
                                VpcId="vpc-1", TargetType="ip", HealthCheckIntervalSeconds=1)
assert (code, status) == ("ValidationError", 400), (code, message)
assert "healthCheckIntervalSeconds" in message and "greater than or equal to 5" in message, message
try:
    elb.create_target_group(Name="web", Protocol="HTTP", Port=8080, VpcId="vpc-0a1b2c3d4e5f60718", TargetType="ip")
    raise AssertionError("expected DuplicateTargetGroupName")
except elb.exceptions.DuplicateTargetGroupNameException:
    pass
code, message, _ = code_of(elb.modify_target_group_attributes, TargetGroupArn=arn, Attributes=[
    {"Key": "deregistration_delay.timeout_seconds", "Value": "4000"}])
assert code == "ValidationError", (code, message)
try:
    elb.describe_load_balancers(Names=["nowhere"])
    raise AssertionError("expected LoadBalancerNotFound")
except elb.exceptions.LoadBalancerNotFoundException:
    pass

print("boto3 elb: waiters and errors ok")
