"""Checks parameter values against the templates' parameter constraints the
way CloudFormation does before it creates or updates a stack (moto's
CloudFormation does not check them): a value must be given when there is no
Default; AllowedValues; AllowedPattern matching the whole value, or each
element of a CommaDelimitedList; MinLength/MaxLength; MinValue/MaxValue and
a numeric value for Number. A refusal reads as CloudFormation's does, with
the parameter's ConstraintDescription.

Also lists the constrained parameters that have no ConstraintDescription
(CloudFormation would then answer with the bare pattern) and the parameters
without a Description.

Usage: python cfn_params.py INFRA_DIR CASES_JSON
CASES_JSON: [{"template": "operator.yaml", "values": {...}}, ...]; each case
is a whole set of parameter values. Prints one JSON document:
{"results": [{"accepted": bool, "errors": [...]}, ...], "undescribed": [...]}.
"""
import json
import re
import sys

import yaml
from moto.cloudformation.utils import yaml_tag_constructor

infra, cases = sys.argv[1], json.loads(sys.argv[2])
yaml.add_multi_constructor("", yaml_tag_constructor)


def load(name):
    with open(f"{infra}/{name}") as f:
        return yaml.load(f, Loader=yaml.Loader)["Parameters"]


def number(text):
    try:
        return float(text)
    except ValueError:
        return None


def check(name, spec, value):
    """CloudFormation's refusal of `value` for parameter `name`, or None."""
    refused = (f"Parameter '{name}' failed to satisfy constraint: "
               f"{' '.join(str(spec.get('ConstraintDescription', '')).split())}")
    kind = spec["Type"]
    if kind == "Number":
        n = number(value)
        if n is None:
            return f"Parameter '{name}' must be a number not '{value}'"
        if "MinValue" in spec and n < float(spec["MinValue"]) or \
                "MaxValue" in spec and n > float(spec["MaxValue"]):
            return refused
        if "AllowedValues" in spec and n not in [float(v) for v in spec["AllowedValues"]]:
            return f"Parameter '{name}' must be one of AllowedValues"
        return None
    items = value.split(",") if kind == "CommaDelimitedList" else [value]
    if "AllowedValues" in spec and any(i not in [str(v) for v in spec["AllowedValues"]] for i in items):
        return f"Parameter '{name}' must be one of AllowedValues"
    if "AllowedPattern" in spec and not all(re.fullmatch(spec["AllowedPattern"], i) for i in items):
        return refused
    if "MinLength" in spec and len(value) < int(spec["MinLength"]) or \
            "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        return refused
    return None


results = []
for case in cases:
    params = load(case["template"])
    errors = [f"Parameter '{k}' does not exist in the template"
              for k in case["values"] if k not in params]
    for name, spec in params.items():
        value = case["values"].get(name, spec.get("Default"))
        if value is None:
            errors.append(f"Parameters: [{name}] must have values")
            continue
        problem = check(name, spec, str(value))
        if problem:
            errors.append(problem)
    results.append({"accepted": not errors, "errors": errors})

undescribed = []
for template in ("table.yaml", "operator.yaml"):
    for name, spec in load(template).items():
        constrained = any(k in spec for k in ("AllowedPattern", "MinLength", "MinValue"))
        if constrained and not spec.get("ConstraintDescription") or not spec.get("Description"):
            undescribed.append(f"{template}: {name}")
print(json.dumps({"results": results, "undescribed": undescribed}))
