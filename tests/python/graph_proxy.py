"""A validating reverse proxy for the Entra stand-in: every request and every answer is checked
with openapi-core against Microsoft's own Graph v1.0 description trimmed to the connector's
operations (tests/entra/graph-v1.0.trimmed.json, made by tests/entra/trim_spec.py), and every
violation is recorded for the test to read. The request and the answer are passed on unchanged
(a violation is recorded, not answered), so the stand-in's behaviour is what the client sees.

    graph_proxy.py --upstream http://127.0.0.1:4100/v1.0 [--spec FILE] [--port 0]

It prints `listening on http://127.0.0.1:PORT` once the spec is loaded and the socket is bound
(port 0: the system picks a free one). The upstream's path (`/v1.0` above) is the base path:
a client calls `http://127.0.0.1:PORT/v1.0/users/...`, which is checked as
`https://graph.microsoft.com/v1.0/users/...` and forwarded to the upstream.

Rules, each explicit:
- a path or method the trimmed description does not have is a violation (`request.path`)
- **allowances**, each a named rule whose hits are recorded in `allowed` and logged to stderr,
  never silent; everything else the description says is enforced:
  - `odata-type-in-request-body`: msgraph-metadata marks `@odata.type` required on every object
    (entities and complex types alike), which real Graph does not require in a request body
    (PATCH /users/{id} `{"accountEnabled":false}`). A request body whose only schema errors are
    that missing property is allowed
  - `odata-type-in-answer`: the same in answers. Graph sends `@odata.type` only where an object's
    type differs from the declared one (OData minimal metadata): never on a user of GET /users or
    an `assignedLicenses` item, always on the objects of memberOf, ownedDevices,
    registeredDevices, authentication/methods and deletedItems/{id}. So a missing `@odata.type` is
    allowed in answers *except* on those objects, where its absence is a violation (POLYMORPHIC)
  - `no-content-under-2XX`: PATCH /users/{id} declares `2XX` with a user body; Graph documents
    (and HTTP requires of) 204 No Content with no body. A 204 without a body is allowed there
  - `select-of-derived-type`: the `$select` enum of a directoryObject collection (memberOf,
    ownedDevices, registeredDevices) lists only the base type's `id` and `deletedDateTime`;
    Graph selects properties of the derived types there (`groupTypes`, `mailEnabled`). A
    `$select` naming only properties of the types the collection holds (group, directoryRole,
    administrativeUnit; device) is allowed
- a `$` query option the operation does not declare (`$selct`) is a violation (OData services
  refuse unknown system query options), but `$skiptoken`/`$deltatoken`, which Graph writes into
  its own nextLinks; so is a request body without a Content-Type
- an answer object carrying `@odata.type` `#microsoft.graph.X` is also checked against the
  schema `microsoft.graph.X` when the trim has it (the description declares `memberOf` as
  directoryObjects; its groups are then checked as groups)
- `POST {base}/$batch` is not in the description: its envelope is checked against Graph's JSON
  batching rules (1 to 20 requests, each with a unique string `id`, a `method`, a relative `url`,
  `dependsOn` naming ids of the batch; the answer has one part per request id), and each inner
  request and inner answer is checked against its own path as if sent alone
- the token endpoint (any path ending in `/oauth2/v2.0/token`) is not Graph: passed through
  unchecked and counted in `passthrough`
- absolute URLs of the upstream in an answer (`@odata.nextLink`, `Location`) are rewritten to
  the proxy so paging stays behind it

Control paths (never forwarded): `GET /__proxy/violations` (a JSON list), `GET /__proxy/report`
(violations, allowed, passthrough, counts), `POST /__proxy/reset`.
"""

import argparse
import http.client
import json
import os
import re
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.validation.response.exceptions import MissingData
from openapi_core.validation.schemas.exceptions import InvalidSchemaValue
from openapi_schema_validator import OAS30ReadValidator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

GRAPH_HOST = "https://graph.microsoft.com"
GRAPH_BASE = "/v1.0"
DEFAULT_SPEC = os.path.join(os.path.dirname(__file__), "..", "entra", "graph-v1.0.trimmed.json")
TOKEN_PATH = re.compile(r"/oauth2/v2\.0/token$")
QUIRK = "'@odata.type' is a required property"
BATCH_LIMIT = 20
BATCH_METHODS = {"GET", "POST", "PATCH", "PUT", "DELETE"}
# The allowances, each a named rule, recorded in `allowed` and logged, never silent.
RULE_ODATA_TYPE = "odata-type-in-request-body"
RULE_ODATA_TYPE_ANSWER = "odata-type-in-answer"
RULE_NO_CONTENT = "no-content-under-2XX"
RULE_DERIVED_SELECT = "select-of-derived-type"
# directoryObject collections and the derived types the connector selects properties of.
DERIVED = {
    re.compile(r"/users/[^/]+/memberOf"): ["microsoft.graph.group", "microsoft.graph.directoryRole",
                                           "microsoft.graph.administrativeUnit"],
    re.compile(r"/users/[^/]+/(ownedDevices|registeredDevices)"): ["microsoft.graph.device"],
}
# Query options Graph writes into its own @odata.nextLink, which no operation declares.
PAGING_TOKENS = {"$skiptoken", "$deltatoken"}
# Answers whose objects are of a type derived from the declared one: OData (minimal metadata)
# names the type there, so Graph sends `@odata.type` on each, and the connector relies on it.
# authenticationMethod's mapping in the description (eight), and the three v1.0 types
# learn.microsoft.com lists today that this snapshot predates (no schema here, so only named):
# a tenant can hold them, and a connector must meet them without breaking.
METHOD_TYPES = {f"microsoft.graph.{k}AuthenticationMethod" for k in (
    "email", "fido2", "microsoftAuthenticator", "password", "phone", "softwareOath",
    "temporaryAccessPass", "windowsHelloForBusiness",
    "external", "platformCredential", "qrCodePin")}
POLYMORPHIC = [
    (re.compile(r"/users/[^/]+/memberOf"), {"microsoft.graph.group", "microsoft.graph.directoryRole",
                                            "microsoft.graph.administrativeUnit"}),
    (re.compile(r"/users/[^/]+/(ownedDevices|registeredDevices)"), {"microsoft.graph.device"}),
    (re.compile(r"/users/[^/]+/authentication/methods"), METHOD_TYPES),
    (re.compile(r"/directory/deletedItems/[^/]+"), None),  # any type the trim has
]
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
               "proxy-authorization", "proxy-authenticate", "host", "content-length"}


class Checker:
    """openapi-core over the trimmed description, plus the subtype check"""

    def __init__(self, spec_path):
        with open(spec_path) as f:
            self.spec = json.load(f)
        self.api = OpenAPI.from_dict(self.spec)
        self.schemas = self.spec["components"]["schemas"]
        registry = Registry().with_resource(
            "urn:graph", Resource.from_contents(self.spec, default_specification=DRAFT4))
        self.subtypes = {}
        self.subtype_cache = {}
        self.registry = registry
        # The query options each operation declares, for the undeclared `$` options check.
        self.options = []
        for template, item in self.spec["paths"].items():
            rx = re.compile(re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)))
            for m, op in item.items():
                if m in ("get", "post", "patch", "put", "delete"):
                    names = {self.param(p)["name"] for p in item.get("parameters", []) + op.get("parameters", [])
                             if self.param(p).get("in") == "query"}
                    self.options.append((rx, m.upper(), names))
        # openapi-core's validators are not documented as thread-safe: one check at a time.
        self.lock = threading.Lock()

    def param(self, p):
        if "$ref" in p:
            return self.spec["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]]
        return p

    def undeclared_options(self, method, path, query):
        """`$` query options the operation does not declare (OData services refuse unknown
        system query options), but the paging tokens Graph puts in its own nextLinks"""
        for rx, m, names in self.options:
            if m == method and rx.fullmatch(path):
                return sorted({k for k, _ in query if k.startswith("$") and k not in names
                               and k not in PAGING_TOKENS})
        return []

    def subtype_validator(self, name):
        v = self.subtypes.get(name)
        if v is None:
            v = OAS30ReadValidator({"$ref": f"urn:graph#/components/schemas/{name}"},
                                   registry=self.registry)
            self.subtypes[name] = v
        return v

    def request(self, method, path, query, headers, body, content_type):
        """(violations, allowed) of one request; `path` is relative to the base path"""
        req = MockRequest(GRAPH_HOST, method, GRAPH_BASE + path, args=query, headers=headers,
                          data=body, content_type=content_type or "application/json")
        bad, allowed = [], []
        if body and not content_type:
            bad.append(("request.headers.Content-Type", "a request body without a Content-Type "
                        "(the description declares application/json)"))
        for name in self.undeclared_options(method, path, query):
            bad.append((f"request.parameters.{name}", f"{name} is no query option of {method} {path}"))
        with self.lock:
            errors = list(self.api.iter_request_errors(req))
        for err in errors:
            if isinstance(err, PathError):
                bad.append(("request.path", f"{method} {path}: {err}"))
                continue
            if "body" in type(err).__name__.lower():
                for msg, quirk in explain(err):
                    if quirk:
                        allowed.append(("request.body", f"[{RULE_ODATA_TYPE}] {msg}"))
                    else:
                        bad.append(("request.body", msg))
                continue
            name = getattr(err, "name", None)
            where = f"request.parameters.{name}" if name else "request.parameters"
            rest = self.derived_select(path, name, err, allowed, where)
            for msg, _ in rest:
                bad.append((where, msg))
        return bad, allowed

    def derived_select(self, path, name, err, allowed, where):
        """The errors left after allowing `$select` values that are properties of the derived
        types a directoryObject collection holds (one allowance naming them)"""
        errors = explain(err)
        types = next((t for pat, t in DERIVED.items() if pat.fullmatch(path)), None)
        cause = err.__cause__
        if (name != "$select" or not types or not isinstance(cause, InvalidSchemaValue)
                or not cause.schema_errors):
            return errors
        props = set()
        for t in types:
            props |= self.properties(t)
        names, rest = [], []
        for e in cause.schema_errors:
            if e.validator == "enum" and e.instance in props:
                names.append(e.instance)
            else:
                rest.append((f"{e.json_path}: {e.message}", False))
        if names:
            allowed.append((where, f"[{RULE_DERIVED_SELECT}] $select names {sorted(set(names))}, "
                            f"properties of {'/'.join(types)} that the description's enum (the base "
                            "directoryObject's) leaves out"))
        return rest

    def properties(self, name):
        out = set()
        todo = [self.schemas.get(name, {})]
        while todo:
            node = todo.pop()
            if "$ref" in node:
                todo.append(self.schemas.get(node["$ref"].rsplit("/", 1)[1], {}))
            out |= set(node.get("properties", {}))
            todo.extend(node.get("allOf", []))
        return out

    def response(self, method, path, query, headers, body, content_type, status, resp_body, resp_type):
        req = MockRequest(GRAPH_HOST, method, GRAPH_BASE + path, args=query, headers=headers,
                          data=body, content_type=content_type or "application/json")
        resp = MockResponse(resp_body or b"", status_code=status, content_type=resp_type)
        bad, allowed, untyped, flagged = [], [], [], set()
        with self.lock:
            errors = list(self.api.iter_response_errors(req, resp))
        for err in errors:
            if isinstance(err, PathError):
                continue  # already recorded for the request
            if status == 204 and not resp_body and isinstance(err, MissingData):
                allowed.append(("response.body", f"[{RULE_NO_CONTENT}] 204 with no body where the "
                                "description declares 2XX with a body"))
                continue
            for msg, quirk in explain(err):
                if quirk:
                    untyped.append(msg.split(":", 1)[0])
                else:
                    bad.append(("response.body" if "data" in type(err).__name__.lower() else "response", msg))
        doc = None
        if resp_body and 200 <= status < 300 and (resp_type or "").startswith("application/json"):
            try:
                doc = json.loads(resp_body)
            except ValueError:
                doc = None
        if doc is not None:
            with self.lock:
                seen = {m for _, m in bad}
                for msg, quirk in self.subtype_errors(doc, "$"):
                    if quirk:
                        untyped.append(msg.split(" ", 1)[0])
                    elif re.sub(r" \(as [^)]*\)", "", msg, count=1) not in seen:
                        # (an object of the declared type was checked as such above)
                        bad.append(("response.body", msg))
            kinds = next((k for p, k in POLYMORPHIC if p.fullmatch(path)), False)
            if kinds is not False:
                listed = isinstance(doc, dict) and "value" in doc
                items = doc.get("value") if listed else [doc]
                for i, item in enumerate(items if isinstance(items, list) else []):
                    where = f"$.value[{i}]" if listed else "$"
                    t = item.get("@odata.type") if isinstance(item, dict) else None
                    name = t[1:] if isinstance(t, str) and t.startswith("#") else None
                    if name is None:
                        flagged.add(where)
                        bad.append(("response.body", f"{where}: '@odata.type' is required here: "
                                    "Graph names the derived type of every object of this collection"))
                    elif name not in (kinds or self.schemas):
                        expected = sorted(kinds) if kinds else "a type of the description"
                        bad.append(("response.body", f"{where}: '@odata.type' {t!r} is no type this "
                                    f"answer holds, expected one of {expected}"))
        untyped = [u for u in untyped if u not in flagged]
        if untyped:
            places = sorted(set(untyped))
            shown = ", ".join(places[:5]) + (f" and {len(places) - 5} more" if len(places) > 5 else "")
            allowed.append(("response.body", f"[{RULE_ODATA_TYPE_ANSWER}] no '@odata.type' at {shown}"))
        return bad, allowed

    def subtype_errors(self, node, where):
        """(message, is_the_odata_type_quirk) of each object naming a kept type by `@odata.type`,
        checked as that type"""
        out = []
        if isinstance(node, dict):
            t = node.get("@odata.type")
            name = t[1:] if isinstance(t, str) and t.startswith("#") else None
            if name and name in self.schemas:
                # Tests show the same groups to many leavers: check each distinct object once.
                key = (name, json.dumps(node, sort_keys=True))
                found = self.subtype_cache.get(key)
                if found is None:
                    found = [(e.json_path[1:], e.message, e.validator == "required" and e.message == QUIRK)
                             for e in self.subtype_validator(name).iter_errors(node)]
                    if len(self.subtype_cache) < 20000:
                        self.subtype_cache[key] = found
                for rel, message, quirk in found:
                    out.append((f"{where}{rel} (as {name}): {message}", quirk))
            for k, v in node.items():
                out.extend(self.subtype_errors(v, f"{where}.{k}"))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                out.extend(self.subtype_errors(v, f"{where}[{i}]"))
        return list(dict.fromkeys(out))


def explain(err):
    """(message, is_the_odata_type_quirk) for each schema error under an openapi-core error"""
    cause = err.__cause__
    if isinstance(cause, InvalidSchemaValue) and cause.schema_errors:
        out = []
        for e in cause.schema_errors:
            quirk = e.validator == "required" and e.message == QUIRK
            out.append((f"{e.json_path}: {e.message}", quirk))
        # The same missing property is reported once per allOf level: say it once.
        return list(dict.fromkeys(out))
    return [(str(err), False)]


class State:
    def __init__(self, checker, upstream):
        self.checker = checker
        u = urllib.parse.urlsplit(upstream)
        self.up_host, self.up_port = u.hostname, u.port or 80
        self.base = u.path.rstrip("/")
        self.up_origin = f"{u.scheme}://{u.netloc}"
        self.origin = None  # set once bound
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with getattr(self, "lock", threading.Lock()):
            self.violations, self.allowed, self.passthrough = [], [], []
            self.calls = 0
            self.check_seconds = 0.0

    def record(self, kind, method, path, status, found):
        if not found:
            return
        with self.lock:
            target = self.violations if kind == "violation" else self.allowed
            for where, msg in found:
                target.append({"method": method, "path": path, "status": status,
                               "location": where, "message": msg})
        for where, msg in found:
            label = "violation" if kind == "violation" else "allowed"
            print(f"graph_proxy {label}: {method} {path} -> {status}: {where}: {msg}",
                  file=sys.stderr, flush=True)


def split_query(raw):
    return urllib.parse.parse_qsl(raw, keep_blank_values=True)


def rel_url(url):
    """The path and query of a batch part's relative url (`/users/x?$select=id` or `users/x`)"""
    u = urllib.parse.urlsplit(url)
    path = u.path if u.path.startswith("/") else "/" + u.path
    return urllib.parse.unquote(path), u.query


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "graph_proxy"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        self.handle_any()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_GET
    # Headers and body go out as two writes: without TCP_NODELAY the client's delayed ACK holds
    # the second for 40 ms.
    disable_nagle_algorithm = True

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self):
        st: State = self.server.state
        method = self.command
        full = self.path
        path, _, query = full.partition("?")
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = self.read_chunked()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
        if path.startswith("/__proxy/"):
            return self.control(st, method, path)
        headers = {k: v for k, v in self.headers.items()}
        if TOKEN_PATH.search(path):
            status, rheaders, rbody = self.forward(st, method, full, headers, body)
            with st.lock:
                st.passthrough.append({"method": method, "path": path, "status": status})
            return self.answer(status, rheaders, rbody)
        if not (path == st.base or path.startswith(st.base + "/")):
            st.record("violation", method, full, 0, [("request.path", f"outside the base path {st.base or '/'}")])
            return self.answer(*self.forward(st, method, full, headers, body))
        # Matched decoded, as a server routes (`%24ref` is `$ref`); forwarded as sent.
        rel = urllib.parse.unquote(path[len(st.base):]) or "/"
        ctype = self.headers.get("Content-Type")
        t0 = time.perf_counter()
        qs = split_query(query)
        if rel == "/$batch" and method == "POST":
            parts = self.check_batch_request(st, full, body)
        else:
            bad, allowed = st.checker.request(method, rel, qs, headers, body, ctype)
            st.record("violation", method, full, 0, bad)
            st.record("allowed", method, full, 0, allowed)
        spent = time.perf_counter() - t0
        status, rheaders, rbody = self.forward(st, method, full, headers, body)
        rbody = self.rewrite(st, rbody)
        rheaders = [(k, self.rewrite_text(st, v) if k.lower() == "location" else v) for k, v in rheaders]
        rtype = next((v for k, v in rheaders if k.lower() == "content-type"), None)
        t0 = time.perf_counter()
        if rel == "/$batch" and method == "POST":
            self.check_batch_response(st, full, parts, status, rbody, rtype)
        else:
            bad, allowed = st.checker.response(method, rel, qs, headers, body, ctype, status, rbody, rtype)
            st.record("violation", method, full, status, bad)
            st.record("allowed", method, full, status, allowed)
        spent += time.perf_counter() - t0
        with st.lock:
            st.calls += 1
            st.check_seconds += spent
        self.answer(status, rheaders, rbody)

    def read_chunked(self):
        """A chunked request body, whole (forwarded with a Content-Length)"""
        out = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline().strip():
                    pass  # trailers
                return out
            out += self.rfile.read(size)
            self.rfile.readline()

    def check_batch_request(self, st, full, body):
        """Checks the envelope and each part; returns {id: (method, rel, query, headers, body, ctype)}"""
        bad, deps = [], []
        parts = {}
        try:
            doc = json.loads(body or b"null")
        except ValueError as e:
            st.record("violation", "POST", full, 0, [("request.body", f"$batch body is not json: {e}")])
            return parts
        reqs = doc.get("requests") if isinstance(doc, dict) else None
        if not isinstance(reqs, list):
            st.record("violation", "POST", full, 0, [("request.body", "$batch expects an object with a requests array")])
            return parts
        if not 1 <= len(reqs) <= BATCH_LIMIT:
            bad.append(("request.body.requests", f"$batch holds 1 to {BATCH_LIMIT} requests, found {len(reqs)}"))
        for i, r in enumerate(reqs):
            where = f"request.body.requests[{i}]"
            if not isinstance(r, dict):
                bad.append((where, "expected an object"))
                continue
            rid, m, url = r.get("id"), r.get("method"), r.get("url")
            hdrs = r.get("headers", {})
            if not isinstance(rid, str) or not rid:
                bad.append((where + ".id", f"expected a non-empty string, found {rid!r}"))
                continue
            if rid in parts:
                bad.append((where + ".id", f"duplicate id {rid!r}"))
            if not isinstance(m, str) or m.upper() not in BATCH_METHODS:
                bad.append((where + ".method", f"expected one of {sorted(BATCH_METHODS)}, found {m!r}"))
                continue
            if not isinstance(url, str) or not url or "://" in url:
                bad.append((where + ".url", f"expected a url relative to the version, found {url!r}"))
                continue
            if not isinstance(hdrs, dict) or not all(isinstance(v, str) for v in hdrs.values()):
                bad.append((where + ".headers", "expected an object of strings"))
                hdrs = {}
            dep = r.get("dependsOn")
            if dep is not None and not (isinstance(dep, list) and all(isinstance(d, str) for d in dep)):
                bad.append((where + ".dependsOn", "expected an array of request ids"))
            elif dep:
                deps.append((where + ".dependsOn", dep))
            unknown = set(r) - {"id", "method", "url", "headers", "body", "dependsOn"}
            if unknown:
                bad.append((where, f"unknown members {sorted(unknown)}"))
            ctype = next((v for k, v in hdrs.items() if k.lower() == "content-type"), None)
            inner_body = b""
            if "body" in r:
                # (a part with a body and no Content-Type is reported as the part's own request)
                inner_body = json.dumps(r["body"]).encode()
            rel, q = rel_url(url)
            qs = split_query(q)
            parts[rid] = (m.upper(), rel, qs, hdrs, inner_body, ctype)
            ib, ia = st.checker.request(m.upper(), rel, qs, hdrs, inner_body, ctype)
            label = f"{full} [{rid}] {m.upper()} {url}"
            st.record("violation", "POST", label, 0, ib)
            st.record("allowed", "POST", label, 0, ia)
        for where, dep in deps:
            unknown = [d for d in dep if d not in parts]
            if unknown:
                bad.append((where, f"names no request of the batch: {unknown}"))
        st.record("violation", "POST", full, 0, bad)
        return parts

    def check_batch_response(self, st, full, parts, status, rbody, rtype):
        if status != 200:
            # The whole batch refused (400 for 21 parts, 429, 401): an ordinary Graph error body.
            bad = st.checker.response(
                "GET", "/users", [], {}, b"", None, status, rbody, rtype)[0] if status >= 400 else []
            if status < 400:
                bad.append(("response", f"$batch answered {status}, expected 200 or an error"))
            st.record("violation", "POST", full, status, bad)
            return
        try:
            doc = json.loads(rbody or b"null")
        except ValueError as e:
            st.record("violation", "POST", full, status, [("response.body", f"not json: {e}")])
            return
        resps = doc.get("responses") if isinstance(doc, dict) else None
        if not isinstance(resps, list):
            st.record("violation", "POST", full, status, [("response.body", "expected an object with a responses array")])
            return
        bad = []
        seen = set()
        for i, r in enumerate(resps):
            where = f"response.body.responses[{i}]"
            if not isinstance(r, dict):
                bad.append((where, "expected an object"))
                continue
            rid, code, hdrs = r.get("id"), r.get("status"), r.get("headers", {})
            if rid not in parts:
                bad.append((where + ".id", f"{rid!r} names no request of the batch"))
                continue
            if rid in seen:
                bad.append((where + ".id", f"{rid!r} answered twice"))
            seen.add(rid)
            if not isinstance(code, int) or not 100 <= code <= 599:
                bad.append((where + ".status", f"expected an HTTP status, found {code!r}"))
                continue
            if not isinstance(hdrs, dict):
                bad.append((where + ".headers", "expected an object"))
                hdrs = {}
            m, rel, qs, h, b, ct = parts[rid]
            inner_type = next((v for k, v in hdrs.items() if k.lower() == "content-type"), None)
            inner = b""
            if "body" in r and r["body"] is not None:
                inner = json.dumps(r["body"]).encode()
                inner_type = inner_type or "application/json"
            ib, ia = st.checker.response(m, rel, qs, h, b, ct, code, inner, inner_type)
            st.record("violation", "POST", f"{full} [{rid}] {m} {rel}", code, ib)
            st.record("allowed", "POST", f"{full} [{rid}] {m} {rel}", code, ia)
        missing = sorted(set(parts) - seen)
        if missing:
            bad.append(("response.body.responses", f"no answer for request ids {missing}"))
        st.record("violation", "POST", full, status, bad)

    def forward(self, st, method, full, headers, body):
        # A fresh connection per call and never a second attempt: a stale keep-alive
        # connection must not make a mutation go out twice.
        conn = http.client.HTTPConnection(st.up_host, st.up_port, timeout=60)
        try:
            out = {k: v for k, v in headers.items() if k.lower() not in HOP_HEADERS}
            out["Host"] = f"{st.up_host}:{st.up_port}"
            conn.request(method, full, body=body if body or method in ("POST", "PATCH", "PUT") else None,
                         headers=out)
            r = conn.getresponse()
            data = r.read()
            return r.status, [(k, v) for k, v in r.getheaders() if k.lower() not in HOP_HEADERS], data
        except OSError as e:
            msg = json.dumps({"error": {"code": "graph_proxy", "message": f"upstream unreachable: {e}"}}).encode()
            return 502, [("Content-Type", "application/json")], msg
        finally:
            conn.close()

    def rewrite_text(self, st, text):
        return text.replace(st.up_origin, st.origin)

    def rewrite(self, st, data):
        if data and st.up_origin.encode() in data:
            return data.replace(st.up_origin.encode(), st.origin.encode())
        return data

    def answer(self, status, headers, body):
        try:
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # The client went away (a test killed it while the stand-in held the answer).
            self.close_connection = True
            print(f"graph_proxy: the client left before its answer: {self.command} {self.path}",
                  file=sys.stderr, flush=True)

    def control(self, st, method, path):
        if method == "GET" and path == "/__proxy/violations":
            with st.lock:
                return self.reply(200, list(st.violations))
        if method == "GET" and path == "/__proxy/report":
            with st.lock:
                return self.reply(200, {
                    "violations": st.violations, "allowed": st.allowed,
                    "passthrough": st.passthrough, "calls": st.calls,
                    "check_seconds": st.check_seconds,
                })
        if method == "POST" and path == "/__proxy/reset":
            st.reset()
            return self.reply(200, {"reset": True})
        return self.reply(404, {"error": f"unknown control path {method} {path}"})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upstream", required=True, help="the stand-in's base url, e.g. http://127.0.0.1:4100/v1.0")
    ap.add_argument("--spec", default=DEFAULT_SPEC)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    checker = Checker(args.spec)
    state = State(checker, args.upstream)
    # A connector at full concurrency opens many connections at once: the default backlog of 5
    # would turn a burst into SYN retries (a second each).
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.state = state
    port = server.server_address[1]
    state.origin = f"http://127.0.0.1:{port}"
    print(f"graph_proxy: spec loaded in {time.perf_counter() - t0:.2f}s", file=sys.stderr, flush=True)
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
