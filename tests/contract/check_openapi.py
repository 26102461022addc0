#!/usr/bin/env python3
"""Validates recorded emulator responses against OpenRouter's OpenAPI document.

Usage: check_openapi.py OPENAPI.yaml SAMPLES.json

SAMPLES.json is a list of {"method", "path", "status", "body"}: "path" is the document's path
template (e.g. "/keys/{hash}"), "status" the HTTP status answered. Each body is validated with
JSON Schema 2020-12 (OpenAPI 3.1's dialect) against the response schema the document gives for
that operation and status, with "$ref"s resolved inside the document. Prints one line per
sample and exits 1 when any sample fails or has no schema in the document.
"""
import json
import sys

import jsonschema
import yaml


def pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    with open(sys.argv[2], encoding="utf-8") as f:
        samples = json.load(f)
    failures = 0
    for s in samples:
        method, path, status = s["method"].lower(), s["path"], str(s["status"])
        label = f'{s["method"]} {path} {status}'
        try:
            content = doc["paths"][path][method]["responses"][status]["content"]
            media = next(iter(content))
        except (KeyError, StopIteration):
            print(f"FAIL {label}: the document defines no response schema for it")
            failures += 1
            continue
        root = dict(doc)
        root["$ref"] = pointer("paths", path, method, "responses", status, "content", media, "schema")
        validator = jsonschema.Draft202012Validator(root)
        errors = sorted(validator.iter_errors(s["body"]), key=lambda e: list(e.absolute_path))
        if errors:
            failures += 1
            for e in errors[:5]:
                where = "/".join(str(p) for p in e.absolute_path) or "(body)"
                print(f"FAIL {label}: {where}: {e.message}")
        else:
            print(f"ok   {label}")
    print(f"{len(samples)} responses checked, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
