"""Checks JSON Schema files (draft 2020-12) and validates instances with them.

Usage: check_schemas.py SCHEMA_DIR CASES_JSON
CASES_JSON is a list of {"schema": file name, "instance": value}. Every
*.schema.json in SCHEMA_DIR is checked as a schema and registered under its
$id, so relative $refs between the files resolve. Prints a JSON list with,
for each case, the error messages (empty when valid).
"""

import json
import sys
from pathlib import Path

from jsonschema import Draft202012Validator
from referencing import Registry, Resource


def main():
    schema_dir, cases = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
    schemas = {}
    for path in sorted(schema_dir.glob("*.schema.json")):
        schema = json.loads(path.read_text())
        Draft202012Validator.check_schema(schema)
        schemas[path.name] = schema
    registry = Registry().with_resources(
        (s.get("$id", name), Resource.from_contents(s)) for name, s in schemas.items()
    )
    results = []
    for case in cases:
        validator = Draft202012Validator(schemas[case["schema"]], registry=registry)
        errors = [
            "/".join(str(p) for p in e.absolute_path) + ": " + e.message
            for e in validator.iter_errors(case["instance"])
        ]
        results.append(errors)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
