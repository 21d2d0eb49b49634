"""Checks recorded Docker Hub exchanges (requests and answers of the recipe stand-in,
crates/testkit/src/recipes/dockerhub.rs) against Docker's own Hub API description trimmed to the
recipe's operations (tests/recipes/docker-hub.trimmed.yaml), with PyPI openapi-core.

    hub_check.py EXCHANGES.json [--spec FILE]

EXCHANGES.json is a list of {method, path, query, headers, body, status, answer} (the stand-in's
record, written by connectors/http/tests/recipes.rs after a run). Every request (path, method,
parameters, security, body) and every answer (status, body) is checked. Prints one `allowed:
[rule] N time(s), first ...` line per allowance used, one `violation: ...` line per violation,
then `dockerhub: ok (N exchanges)` and exits 0, or exits 1 when there was a violation.

Allowances, each a named rule, printed on every use and narrow; everything else the description
says is enforced (each rule is printed once with its count and first use):
- `members-page-is-an-object`: the description declares the 200 of GET
  /v2/orgs/{org_name}/members as an *array* of `org_member_paginated`; Docker's server answers
  one such object (`{"count", "next", "previous", "results"}`, as Docker's own hub-tool reads it).
  An object answer there is checked as the one item of that array (so as
  `org_member_paginated`, every member as `org_member`); any other body is checked as declared
- `search-is-text`: the `search` parameter of that operation is declared `type: integer`
  ("Search term."); Docker searches usernames, names and emails with it. A non-integer `search`
  is allowed there and only there (GET .../groups declares it a string)
- `null-page-link`: `next`/`previous` of a members or groups page are declared `type: string`
  (not nullable); Docker's paginated answers carry null on the first and last page. A null there
  is allowed; a null anywhere else, or a non-string non-null link, is a violation
"""

import argparse
import copy
import json
import os
import re
import sys
import urllib.parse

import yaml
from openapi_core import OpenAPI
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.testing import MockRequest, MockResponse

HOST = "https://hub.docker.com"
DEFAULT_SPEC = os.path.join(os.path.dirname(__file__), "docker-hub.trimmed.yaml")
MEMBERS = re.compile(r"^/v2/orgs/[^/]+/members$")
PAGED = re.compile(r"^/v2/orgs/[^/]+/(members|groups)$")
RULE_PAGE_OBJECT = "members-page-is-an-object"
RULE_SEARCH_TEXT = "search-is-text"
RULE_NULL_LINK = "null-page-link"


def explain(err):
    """The messages of an openapi-core error and of its schema errors"""
    out = [f"{type(err).__name__}: {err}"]
    cause = err.__cause__
    while cause is not None:
        for e in getattr(cause, "schema_errors", None) or []:
            out.append(f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}")
        cause = cause.__cause__
    return out


class Checker:
    def __init__(self, spec_path):
        with open(spec_path) as f:
            spec = yaml.safe_load(f)
        self.strict = OpenAPI.from_dict(copy.deepcopy(spec))
        # The one change `search-is-text` makes: the members search parameter is text.
        relaxed = copy.deepcopy(spec)
        relaxed["components"]["parameters"]["search"]["schema"] = {"type": "string"}
        self.relaxed = OpenAPI.from_dict(relaxed)
        self.violations = []
        self.allowed = []

    def check(self, i, ex):
        method, path = ex["method"], ex["path"]
        where = f"#{i} {method} {path}"
        query = dict(urllib.parse.parse_qsl(ex.get("query") or "", keep_blank_values=True))
        headers = {k: v for k, v in ex.get("headers", [])}
        body = ex.get("body") or ""
        api = self.strict
        search = query.get("search")
        if MEMBERS.match(path) and search is not None and not re.fullmatch(r"-?\d+", search):
            api = self.relaxed
            self.allowed.append(f"[{RULE_SEARCH_TEXT}] {where}: search={search!r}")
        req = MockRequest(HOST, method.lower(), path, args=query, headers=headers,
                          data=body.encode() if body else None,
                          content_type=headers.get("Content-Type", "application/json"))
        for err in api.iter_request_errors(req):
            for msg in explain(err):
                self.violations.append(f"{where} request: {msg}")
            if isinstance(err, PathError):
                return
        answer = ex.get("answer") or ""
        status = ex["status"]
        if answer and PAGED.match(path) and status == 200:
            value = json.loads(answer)
            if isinstance(value, dict):
                for k in ("next", "previous"):
                    if k in value and value[k] is None:
                        del value[k]
                        self.allowed.append(f"[{RULE_NULL_LINK}] {where}: {k} is null")
                if MEMBERS.match(path):
                    value = [value]
                    self.allowed.append(f"[{RULE_PAGE_OBJECT}] {where}: one page object, "
                                        "checked as the array's one item")
                answer = json.dumps(value)
        resp = MockResponse(answer.encode(), status_code=status,
                            content_type="application/json" if answer else None)
        for err in api.iter_response_errors(req, resp):
            for msg in explain(err):
                self.violations.append(f"{where} answer {status}: {msg}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("exchanges")
    ap.add_argument("--spec", default=DEFAULT_SPEC)
    args = ap.parse_args()
    with open(args.exchanges) as f:
        exchanges = json.load(f)
    c = Checker(args.spec)
    for i, ex in enumerate(exchanges):
        c.check(i, ex)
    rules = {}
    for a in c.allowed:
        rules.setdefault(a.split("]", 1)[0] + "]", []).append(a)
    for rule, hits in rules.items():
        print(f"allowed: {rule} {len(hits)} time(s), first {hits[0].split('] ', 1)[1]}")
    for v in c.violations:
        print(f"violation: {v}")
    if c.violations:
        sys.exit(1)
    print(f"dockerhub: ok ({len(exchanges)} exchanges)")


if __name__ == "__main__":
    main()
