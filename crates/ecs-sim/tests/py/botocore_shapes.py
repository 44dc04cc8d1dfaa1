"""Checks the simulator's answers against botocore's own service model (the
authority for AWS's wire shapes): every member an answer holds must be one
the model names for that operation's output, of the model's type, an enum
value the model lists, and every member the model requires must be there.

The calls come on standard input as JSON: a list of
{"service": "ecs", "operation": "DescribeContainerInstances", "params": {...}}
(params as boto3 takes them; "expectError": "Code" for a call that must fail
with that code, which the model must list among the operation's errors).
Each call is sent by boto3 itself, so the request is checked against the
model's input shape too.

Usage: python botocore_shapes.py URL < calls.json
"""
import json
import sys

import boto3
import botocore.exceptions

url = sys.argv[1]
calls = json.load(sys.stdin)
kw = dict(endpoint_url=url, region_name="us-east-1",
          aws_access_key_id="test", aws_secret_access_key="test")
clients = {}
raw = {}


def keep_raw(response_dict=None, **_):
    raw["body"] = response_dict["body"]


def client(service):
    if service not in clients:
        c = boto3.client(service, **kw)
        c.meta.events.register("before-parse", keep_raw)
        clients[service] = c
    return clients[service]


def check(shape, value, path, problems):
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            problems.append(f"{path}: {value!r} is not an object ({shape.name})")
            return
        for key, member in value.items():
            if key not in shape.members:
                problems.append(f"{path}.{key}: not a member of {shape.name}")
                continue
            check(shape.members[key], member, f"{path}.{key}", problems)
        for key in shape.required_members:
            if key not in value:
                problems.append(f"{path}.{key}: required by {shape.name}, missing")
    elif kind == "list":
        if not isinstance(value, list):
            problems.append(f"{path}: {value!r} is not a list ({shape.name})")
            return
        for i, item in enumerate(value):
            check(shape.member, item, f"{path}[{i}]", problems)
    elif kind == "map":
        if not isinstance(value, dict):
            problems.append(f"{path}: {value!r} is not a map ({shape.name})")
            return
        for k, v in value.items():
            check(shape.value, v, f"{path}[{k!r}]", problems)
    elif kind == "string":
        if not isinstance(value, str):
            problems.append(f"{path}: {value!r} is not a string ({shape.name})")
        elif shape.enum and value not in shape.enum:
            problems.append(f"{path}: {value!r} is not one of {shape.enum}")
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{path}: {value!r} is not a whole number ({shape.name})")
    elif kind in ("double", "float", "timestamp"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            problems.append(f"{path}: {value!r} is not a number ({shape.name})")
    elif kind == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{path}: {value!r} is not a boolean ({shape.name})")


problems = []
for call in calls:
    c = client(call["service"])
    op = c.meta.service_model.operation_model(call["operation"])
    method = getattr(c, botocore.xform_name(call["operation"]))
    expected = call.get("expectError")
    raw.clear()
    try:
        method(**call.get("params", {}))
        if expected:
            problems.append(f"{op.name}: answered, but {expected} was expected")
            continue
    except botocore.exceptions.ClientError as e:
        code = e.response["Error"]["Code"]
        if code != expected:
            problems.append(f"{op.name}: {code} ({e}) where {expected or 'an answer'} was expected")
        elif code not in [s.name for s in op.error_shapes] + ["ThrottlingException"]:
            problems.append(f"{op.name}: {code} is not an error the model lists")
        continue
    body = json.loads(raw["body"] or b"{}")
    check(op.output_shape, body, op.name, problems)

if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"botocore shapes ok: {len(calls)} calls")
