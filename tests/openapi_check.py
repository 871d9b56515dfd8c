#!/usr/bin/env python3
"""Validates every HTTP response the API tests received against server/openapi.json.

usage: openapi_check.py OPENAPI_JSON RECORD_DIR

RECORD_DIR holds one NDJSON file per test program (tests/testlib.h, record_api_response):
{"method", "path", "status", "content_type", "body"} per response. Each must match a path
and method of the document (or be an error of the documented shape), its status must be
documented for that operation, and its body must validate against the response schema
(JSON Schema 2020-12, python3-jsonschema), NDJSON line by line. Records with method
CALLBACK are callback bodies a test's receiver got (schema CallbackBody).
"""
import json
import os
import re
import sys
import warnings

import jsonschema
from jsonschema import Draft202012Validator, FormatChecker


def main():
    doc_path, record_dir = sys.argv[1], sys.argv[2]
    with open(doc_path) as f:
        doc = json.load(f)
    problems = []
    if not str(doc.get("openapi", "")).startswith("3.1"):
        problems.append("the document is not OpenAPI 3.1: openapi=%r" % doc.get("openapi"))
    for name, schema in doc["components"]["schemas"].items():
        try:
            Draft202012Validator.check_schema(schema)
        except jsonschema.exceptions.SchemaError as e:
            problems.append("components.schemas.%s is not valid JSON Schema 2020-12: %s" % (name, e.message))
    with warnings.catch_warnings():  # RefResolver: deprecated after Debian 12's jsonschema 4.10, still there
        warnings.simplefilter("ignore", DeprecationWarning)
        resolver = jsonschema.RefResolver.from_schema(doc)

    def resolve(obj):
        while isinstance(obj, dict) and "$ref" in obj:
            obj = resolver.resolve(obj["$ref"])[1]
        return obj

    def validate(schema, value, where):
        v = Draft202012Validator(schema, resolver=resolver, format_checker=FormatChecker())
        errs = sorted(v.iter_errors(value), key=lambda e: list(e.absolute_path))
        for e in errs[:3]:
            problems.append("%s: %s at %s" % (where, e.message[:300], "/".join(map(str, e.absolute_path)) or "(root)"))
        return not errs

    templates = []
    for tpl in doc["paths"]:
        segs = ["[^/]+" if s.startswith("{") and s.endswith("}") else re.escape(s) for s in tpl.split("/")]
        templates.append((tpl, re.compile("^" + "/".join(segs) + "$")))
    error_schema = {"$ref": "#/components/schemas/Error"}

    records, seen = 0, {}
    files = sorted(f for f in os.listdir(record_dir) if f.endswith(".ndjson")) if os.path.isdir(record_dir) else []
    for fname in files:
        with open(os.path.join(record_dir, fname)) as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                r = json.loads(line)
                records += 1
                where = "%s:%d %s %s -> %d" % (fname, lineno, r["method"], r["path"], r["status"])
                if r["method"] == "CALLBACK":
                    validate({"$ref": "#/components/schemas/CallbackBody"}, json.loads(r["body"]), where)
                    seen[("CALLBACK", "", 0)] = seen.get(("CALLBACK", "", 0), 0) + 1
                    continue
                path = r["path"].split("?", 1)[0]
                tpl = next((t for t, rx in templates if rx.match(path)), None)
                op = doc["paths"][tpl].get(r["method"].lower()) if tpl else None
                key = (r["method"], tpl or "(undocumented path)", r["status"])
                seen[key] = seen.get(key, 0) + 1
                if op is None:
                    # An unknown path or method: only an error of the documented shape may answer.
                    if r["status"] not in (404, 405, 401, 400, 408, 413, 431):
                        problems.append("%s: no such operation in the document" % where)
                    else:
                        try:
                            validate(error_schema, json.loads(r["body"]), where)
                        except ValueError:
                            problems.append("%s: error body is not JSON" % where)
                    continue
                resp = op["responses"].get(str(r["status"]))
                if resp is None:
                    problems.append("%s: status %d is not documented for %s %s" % (where, r["status"], r["method"], tpl))
                    continue
                resp = resolve(resp)
                content = resp.get("content", {})
                ctype = r["content_type"].split(";")[0].strip()
                if ctype not in content:
                    problems.append("%s: content type %r is not documented (%s)" % (where, ctype, ", ".join(content)))
                    continue
                schema = content[ctype]["schema"]
                if ctype == "application/json":
                    try:
                        body = json.loads(r["body"])
                    except ValueError as e:
                        problems.append("%s: body is not JSON: %s" % (where, e))
                        continue
                    validate(schema, body, where)
                elif ctype == "application/x-ndjson":
                    for i, l in enumerate(r["body"].splitlines(), 1):
                        if l.strip():
                            validate(schema, json.loads(l), "%s line %d" % (where, i))
                else:
                    validate(schema, r["body"], where)

    for (m, tpl, st), n in sorted(seen.items(), key=lambda kv: (kv[0][1], kv[0][0], kv[0][2])):
        print("%6d  %-8s %-24s %s" % (n, m, tpl, st or ""))
    print("%d responses validated from %d files" % (records, len(files)))
    # The API tests must have exercised the contract, errors included.
    for need in [("POST", "/v1/jobs", 202), ("GET", "/v1/jobs/{id}", 200), ("POST", "/v1/run", 200),
                 ("GET", "/v1/openapi.json", 200), ("POST", "/v1/jobs", 400), ("POST", "/v1/jobs", 422),
                 ("GET", "/v1/jobs/{id}/logs", 200), ("CALLBACK", "", 0)]:
        if need not in seen:
            problems.append("no recorded response for %s %s %s (did the API tests run?)" % need)
    for p in problems:
        print("FAIL: " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
