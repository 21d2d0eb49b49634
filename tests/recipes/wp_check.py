"""Checks recorded WordPress exchanges (the recipe stand-in's, crates/testkit/src/recipes/wordpress.rs)
against WordPress's answer schemas (tests/recipes/wp-rest.schema.json: the JSON Schema forms of npm
wp-types 4.71.0's interfaces, WordPress 7.1) and the requests against the argument rules of core's
REST controllers as we read them, with PyPI jsonschema.

    wp_check.py EXCHANGES.json [--schema FILE]

EXCHANGES.json is a list of {method, path, query, headers, body, status, answer}. Prints one
`violation: ...` line per violation, then `wordpress: ok (N exchanges)` and exits 0, or exits 1.
WordPress publishes no OpenAPI description; its REST index (`/wp-json`, `OPTIONS` on a route)
describes each route's arguments and item schema at run time on a live site, which this machine
does not have: the request rules below are written from core's `get_collection_params()` and
route registrations (users: context view|embed|edit, page >= 1, per_page 1..100, search; delete:
reassign an integer, force a boolean; update: roles an array of strings).
"""

import argparse
import json
import os
import re
import sys
import urllib.parse

import jsonschema

DEFAULT_SCHEMA = os.path.join(os.path.dirname(__file__), "wp-rest.schema.json")
BASE = "/wp-json/wp/v2"
ROUTES = [
    # (method, path pattern, allowed query args, 200 answer schema)
    ("GET", r"/users", {"context", "page", "per_page", "search"}, {"type": "array", "items": {"$ref": "#/definitions/WP_REST_API_User"}}),
    ("GET", r"/users/\d+", {"context"}, {"$ref": "#/definitions/WP_REST_API_User"}),
    ("POST", r"/users/\d+", {"context"}, {"$ref": "#/definitions/WP_REST_API_User"}),
    ("DELETE", r"/users/\d+", {"reassign", "force"}, {"$ref": "#/definitions/Deleted_User"}),
    ("GET", r"/users/\d+/application-passwords", {"context"}, {"type": "array", "items": {"$ref": "#/definitions/WP_REST_API_Application_Password"}}),
    ("GET", r"/users/\d+/application-passwords/[0-9a-f-]{36}", {"context"}, {"$ref": "#/definitions/WP_REST_API_Application_Password"}),
    ("DELETE", r"/users/\d+/application-passwords/[0-9a-f-]{36}", set(), {"$ref": "#/definitions/Deleted_Application_Password"}),
]
BOOL = {"true", "false", "1", "0"}


def check_args(method, path, query, body, bad):
    if method == "GET" and "context" in query and query["context"] not in {"view", "embed", "edit"}:
        bad.append(f"context={query['context']!r} is not one of view, embed, edit")
    for k, lo, hi in (("page", 1, None), ("per_page", 1, 100)):
        if k in query:
            v = query[k]
            if not re.fullmatch(r"\d+", v) or int(v) < lo or (hi and int(v) > hi):
                bad.append(f"{k}={v!r} is not an integer in [{lo}, {hi or 'inf'}]")
    if method == "DELETE" and re.fullmatch(r"/users/\d+", path):
        if not re.fullmatch(r"\d+", query.get("reassign", "")):
            bad.append(f"reassign={query.get('reassign')!r} is not an integer")
        if query.get("force") not in BOOL:
            bad.append(f"force={query.get('force')!r} is not a boolean")
    if method == "POST":
        try:
            doc = json.loads(body) if body else {}
        except ValueError:
            bad.append("the body is not JSON")
            return
        roles = doc.get("roles")
        if roles is not None and not (isinstance(roles, list) and all(isinstance(r, str) for r in roles)):
            bad.append(f"roles={roles!r} is not an array of strings")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("exchanges")
    ap.add_argument("--schema", default=DEFAULT_SCHEMA)
    args = ap.parse_args()
    with open(args.schema) as f:
        schema = json.load(f)
    with open(args.exchanges) as f:
        exchanges = json.load(f)
    violations = []

    def validate(value, sub, where):
        s = dict(sub)
        s["definitions"] = schema["definitions"]
        v = jsonschema.Draft7Validator(s)
        for e in sorted(v.iter_errors(value), key=lambda e: list(e.absolute_path)):
            violations.append(f"{where}: {'/'.join(str(p) for p in e.absolute_path)}: {e.message}")

    for i, ex in enumerate(exchanges):
        method, full = ex["method"], ex["path"]
        where = f"#{i} {method} {full}"
        if not full.startswith(BASE):
            violations.append(f"{where}: not a wp/v2 route")
            continue
        path = full[len(BASE):]
        query = dict(urllib.parse.parse_qsl(ex.get("query") or "", keep_blank_values=True))
        route = next((r for r in ROUTES if r[0] == method and re.fullmatch(r[1], path)), None)
        if route is None:
            violations.append(f"{where}: no such route in WordPress core")
            continue
        extra = set(query) - route[2]
        if extra:
            violations.append(f"{where}: request: unknown argument(s) {sorted(extra)}")
        bad = []
        check_args(method, path, query, ex.get("body") or "", bad)
        violations.extend(f"{where}: request: {b}" for b in bad)
        status, answer = ex["status"], ex.get("answer") or ""
        try:
            value = json.loads(answer) if answer else None
        except ValueError:
            violations.append(f"{where}: answer {status} is not JSON")
            continue
        if status == 200:
            validate(value, route[3], f"{where} answer 200")
        elif status >= 400:
            validate(value, {"$ref": "#/definitions/WP_REST_API_Error"}, f"{where} answer {status}")
            if isinstance(value, dict) and value.get("data", {}).get("status") != status:
                violations.append(f"{where} answer {status}: data.status is {value.get('data', {}).get('status')!r}")
        else:
            violations.append(f"{where}: status {status} is not one core answers here")
    for v in violations:
        print(f"violation: {v}")
    if violations:
        sys.exit(1)
    print(f"wordpress: ok ({len(exchanges)} exchanges)")


if __name__ == "__main__":
    main()
