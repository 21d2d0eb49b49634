#!/usr/bin/env python3
"""Drives the Kubernetes stand-in with the official Python client and checks every answer twice.

1. The client's strict models (PyPI `kubernetes` 37.0.2, client-side validation on):
   every answer is deserialized into its model (`V1ClusterRoleBinding`, `V1RoleBindingList`,
   `V1Status` for a refusal, `V1ObjectMeta` for a metadata-only item).
2. Kubernetes' own OpenAPI description, trimmed (tests/kubernetes/kubernetes-rbac.trimmed.json):
   openapi-core validates each answer whose status the spec declares for the operation. The spec
   declares 200/201/202/401 only, so 404, 409 and 429 are listed as `undeclared` (their bodies are
   checked by `V1Status` alone) and the caller says which it provoked.
3. The connector's own requests (a JSON file of `[method, path, query, body]` recorded by the
   stand-in): each is validated as a request against the same description.

Usage: kube_check.py URL TOKEN SPEC RECORDED.json [throttled]
Run with tests/kubernetes/.venv/bin/python (kubernetes 37.0.2 needs python-dateutil>=3, which
botocore in tests/python/.venv refuses). Prints one JSON object.
"""
import json
import sys
import urllib.request
from urllib.parse import parse_qsl, urlencode

from kubernetes import client
from kubernetes.client.rest import ApiException
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

URL, TOKEN, SPEC_PATH, RECORDED = sys.argv[1:5]
MODE = sys.argv[5] if len(sys.argv) > 5 else "full"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
# The description's server (each operation names it); requests are matched as if sent there.
HOST = "https://kubernetes.local"
SPEC_DICT = json.load(open(SPEC_PATH))
SPEC = OpenAPI.from_dict(SPEC_DICT)

cfg = client.Configuration()
cfg.host = URL
cfg.api_key = {"authorization": TOKEN}
cfg.api_key_prefix = {"authorization": "Bearer"}
cfg.client_side_validation = True
# urllib3 would otherwise wait out a 429's Retry-After and send again by itself.
cfg.retries = False
api = client.ApiClient(cfg)
rbac = client.RbacAuthorizationV1Api(api)
core = client.CoreV1Api(api)

violations = []
undeclared = []
steps = {}


def des(data, model):
    """The answer as the client's model (pydantic, strict types)."""
    text = data.decode() if isinstance(data, (bytes, bytearray)) else data
    return api.deserialize(text, model, "application/json")


def view_args(path, pattern):
    """The path parameters' values: {name: value} for each `{name}` segment of the pattern."""
    return {p[1:-1]: x for p, x in zip(pattern.split("/"), path.split("/")) if p.startswith("{")}


def declared(method, path_pattern, status):
    op = SPEC_DICT["paths"][path_pattern][method.lower()]
    return str(status) in op["responses"]


def check_answer(method, path, pattern, query, body, status, data):
    if not declared(method, pattern, status):
        undeclared.append(f"{method} {pattern} {status}")
        return
    req = MockRequest(HOST, method.lower(), path, path_pattern=pattern, args=query,
                      view_args=view_args(path, pattern), headers={"authorization": "Bearer " + TOKEN},
                      data=json.dumps(body).encode() if body is not None else None,
                      content_type="application/json")
    resp = MockResponse(data, status_code=status, content_type="application/json")
    for e in SPEC.iter_response_errors(req, resp):
        cause = getattr(e, "__cause__", None)
        violations.append(f"answer {method} {path} {status}: {e}: {cause}")


def call(label, method, path, pattern, fn, model, query=None, body=None):
    """Calls `fn` (a client method with _preload_content=False), checks the answer against the
    spec and deserializes it into `model` (V1Status when refused); returns (status, object, json)."""
    try:
        r = fn(_preload_content=False)
        status, data = r.status, r.data if r.data is not None else r.read()
    except ApiException as e:
        status, data = e.status, e.body if isinstance(e.body, bytes) else (e.body or "").encode()
    check_answer(method, path, pattern, query or {}, body, status, data)
    kind = model if 200 <= status < 300 else "V1Status"
    obj = des(data, kind)
    doc = json.loads(data)
    steps[label] = [status, doc.get("reason") or doc.get("kind")]
    return status, obj, doc


def raw_get(path, accept):
    req = urllib.request.Request(URL + path, headers={"authorization": "Bearer " + TOKEN, "accept": accept})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def subject(name):
    return client.RbacV1Subject(kind="User", name=name, api_group="rbac.authorization.k8s.io")


def throttled():
    status, obj, doc = call("throttled", "GET", f"{RBAC}/clusterrolebindings", f"{RBAC}/clusterrolebindings",
                            lambda **k: rbac.list_cluster_role_binding(**k), "V1ClusterRoleBindingList")
    assert obj.details.retry_after_seconds == doc["details"]["retryAfterSeconds"], doc
    return {"status": status, "reason": obj.reason, "retry_after_seconds": obj.details.retry_after_seconds}


def full():
    crbs = f"{RBAC}/clusterrolebindings"
    one = f"{RBAC}/clusterrolebindings/{{name}}"
    out = {}
    _, lst, _ = call("list_crb", "GET", crbs, crbs, lambda **k: rbac.list_cluster_role_binding(**k),
                     "V1ClusterRoleBindingList")
    out["crbs"] = sorted(i.metadata.name for i in lst.items)
    body = client.V1ClusterRoleBinding(
        metadata=client.V1ObjectMeta(name="py-made"),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="view"),
        subjects=[subject("py")])
    raw_body = api.sanitize_for_serialization(body)
    st, made, _ = call("create", "POST", crbs, crbs, lambda **k: rbac.create_cluster_role_binding(body, **k),
                       "V1ClusterRoleBinding", body=raw_body)
    assert st == 201, st
    uid, rv0 = made.metadata.uid, made.metadata.resource_version
    call("create_again", "POST", crbs, crbs, lambda **k: rbac.create_cluster_role_binding(body, **k),
         "V1ClusterRoleBinding", body=raw_body)
    p = f"{crbs}/py-made"
    _, got, _ = call("read", "GET", p, one, lambda **k: rbac.read_cluster_role_binding("py-made", **k),
                     "V1ClusterRoleBinding")
    got.subjects.append(subject("py2"))
    upd = api.sanitize_for_serialization(got)
    _, after, _ = call("replace", "PUT", p, one, lambda **k: rbac.replace_cluster_role_binding("py-made", got, **k),
                       "V1ClusterRoleBinding", body=upd)
    out["version_moved"] = int(after.metadata.resource_version) > int(rv0)
    out["uid_kept"] = after.metadata.uid == uid
    _, same, _ = call("replace_noop", "PUT", p, one,
                      lambda **k: rbac.replace_cluster_role_binding("py-made", after, **k),
                      "V1ClusterRoleBinding", body=api.sanitize_for_serialization(after))
    out["noop_keeps_version"] = same.metadata.resource_version == after.metadata.resource_version
    got.metadata.resource_version = rv0
    call("replace_stale", "PUT", p, one, lambda **k: rbac.replace_cluster_role_binding("py-made", got, **k),
         "V1ClusterRoleBinding", body=api.sanitize_for_serialization(got))
    wrong = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="00000000-0000-0000-0000-000000000000"))
    _, st409, _ = call("delete_wrong_uid", "DELETE", p, one,
                       lambda **k: rbac.delete_cluster_role_binding("py-made", body=wrong, **k), "V1Status",
                       body=api.sanitize_for_serialization(wrong))
    out["precondition_message"] = st409.message
    stale = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid, resource_version=rv0))
    call("delete_stale_rv", "DELETE", p, one,
         lambda **k: rbac.delete_cluster_role_binding("py-made", body=stale, **k), "V1Status",
         body=api.sanitize_for_serialization(stale))
    ok = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid, resource_version=after.metadata.resource_version))
    _, done, _ = call("delete", "DELETE", p, one,
                      lambda **k: rbac.delete_cluster_role_binding("py-made", body=ok, **k), "V1Status",
                      body=api.sanitize_for_serialization(ok))
    out["delete_status"] = done.status
    _, gone, _ = call("read_gone", "GET", p, one, lambda **k: rbac.read_cluster_role_binding("py-made", **k),
                      "V1ClusterRoleBinding")
    out["gone_reason"] = gone.reason
    call("delete_gone", "DELETE", p, one, lambda **k: rbac.delete_cluster_role_binding("py-made", **k), "V1Status")

    # Paging, as the connector reads lists.
    names, cont, pages = [], None, 0
    while True:
        q = {"limit": "2"} | ({"continue": cont} if cont else {})
        _, page, _ = call(f"page_{pages}", "GET", crbs, crbs,
                          lambda **k: rbac.list_cluster_role_binding(limit=2, _continue=cont, **k),
                          "V1ClusterRoleBindingList", query=q)
        pages += 1
        names += [i.metadata.name for i in page.items]
        cont = page.metadata._continue
        if not cont:
            break
    out["paged"] = [pages, names == out["crbs"]]

    # RoleBindings, in every namespace and in one.
    rbs = f"{RBAC}/rolebindings"
    _, rl, _ = call("list_rb_all", "GET", rbs, rbs, lambda **k: rbac.list_role_binding_for_all_namespaces(**k),
                    "V1RoleBindingList")
    out["rbs"] = sorted(f"{i.metadata.namespace}/{i.metadata.name}" for i in rl.items)
    nsr = f"{RBAC}/namespaces/shop/rolebindings"
    nsr_p = f"{RBAC}/namespaces/{{namespace}}/rolebindings"
    rb = client.V1RoleBinding(metadata=client.V1ObjectMeta(name="py-rb"),
                              role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="edit"),
                              subjects=[subject("py")])
    call("create_rb", "POST", nsr, nsr_p, lambda **k: rbac.create_namespaced_role_binding("shop", rb, **k),
         "V1RoleBinding", body=api.sanitize_for_serialization(rb))
    call("list_rb", "GET", nsr, nsr_p, lambda **k: rbac.list_namespaced_role_binding("shop", **k), "V1RoleBindingList")
    call("delete_rb", "DELETE", f"{nsr}/py-rb", nsr_p + "/{name}",
         lambda **k: rbac.delete_namespaced_role_binding("py-rb", "shop", **k), "V1Status")

    # ServiceAccounts and their token Secrets.
    sas = "/api/v1/serviceaccounts"
    _, sl, _ = call("list_sa_all", "GET", sas, sas, lambda **k: core.list_service_account_for_all_namespaces(**k),
                    "V1ServiceAccountList")
    out["sas"] = sorted(f"{i.metadata.namespace}/{i.metadata.name}:{(i.metadata.annotations or {}).get('revoked.dev/owner', '')}" for i in sl.items)
    sec = "/api/v1/namespaces/ci/secrets"
    sec_p = "/api/v1/namespaces/{namespace}/secrets"
    sel = "type=kubernetes.io/service-account-token"
    _, secs, _ = call("list_token_secrets", "GET", sec, sec_p,
                      lambda **k: core.list_namespaced_secret("ci", field_selector=sel, **k), "V1SecretList",
                      query={"fieldSelector": sel})
    out["token_secrets"] = sorted(f"{s.metadata.name}:{s.type}" for s in secs.items)
    out["token_secrets_tied"] = all(
        s.metadata.annotations.get("kubernetes.io/service-account.uid") for s in secs.items)
    # Metadata only, as the connector reads Secrets.
    st, data = raw_get(f"{sec}?{urlencode({'fieldSelector': sel})}",
                       "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")
    doc = json.loads(data)
    des(json.dumps(doc["metadata"]), "V1ListMeta")
    for item in doc["items"]:
        des(json.dumps(item["metadata"]), "V1ObjectMeta")
    out["metadata_only"] = [st, doc["kind"], sorted(set().union(*[set(i) for i in doc["items"]]) if doc["items"] else [])]
    name = doc["items"][0]["metadata"]["name"]
    st, data = raw_get(f"{sec}/{name}", "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1")
    one_doc = json.loads(data)
    des(json.dumps(one_doc["metadata"]), "V1ObjectMeta")
    out["metadata_one"] = [st, one_doc["kind"], "data" in one_doc]
    # A wrong token.
    bad = client.Configuration()
    bad.host, bad.api_key, bad.api_key_prefix = URL, {"authorization": "nope"}, {"authorization": "Bearer"}
    try:
        client.RbacAuthorizationV1Api(client.ApiClient(bad)).list_cluster_role_binding(_preload_content=False)
        out["unauthorized"] = "accepted"
    except ApiException as e:
        check_answer("GET", crbs, crbs, {}, None, e.status, e.body if isinstance(e.body, bytes) else e.body.encode())
        st = des(e.body, "V1Status")
        out["unauthorized"] = [e.status, st.reason]
    return out


def requests_checked():
    """The connector's own requests, validated as requests."""
    recorded = json.load(open(RECORDED))
    n = 0
    for method, path, query, body in recorded:
        pattern = None
        for p in SPEC_DICT["paths"]:
            ps, xs = p.split("/"), path.split("/")
            if len(ps) == len(xs) and all(a == b or a.startswith("{") for a, b in zip(ps, xs)):
                pattern = p
        if pattern is None:
            violations.append(f"request {method} {path}: no such path in the description")
            continue
        args = dict(parse_qsl(query or ""))
        req = MockRequest(HOST, method.lower(), path, path_pattern=pattern, args=args,
                          view_args=view_args(path, pattern), headers={"authorization": "Bearer " + TOKEN},
                          data=body.encode() if body else None, content_type="application/json")
        for e in SPEC.iter_request_errors(req):
            violations.append(f"request {method} {path}: {e}: {getattr(e, '__cause__', None)}")
        n += 1
    return n


result = {"mode": MODE}
if MODE == "throttled":
    result["throttled"] = throttled()
else:
    result["seen"] = full()
    result["requests_checked"] = requests_checked()
result["steps"] = steps
result["violations"] = violations
result["undeclared"] = sorted(set(undeclared))
print(json.dumps(result, indent=1, sort_keys=True))
