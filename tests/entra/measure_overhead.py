"""Measures what tests/python/graph_proxy.py adds to each Graph call: the same calls sent
directly to a small upstream and through the proxy, one at a time, on one keep-alive connection.

    tests/python/.venv/bin/python tests/entra/measure_overhead.py [calls per kind, default 200]

The upstream is a stdlib server in this process answering fixed bodies shaped like Graph's (a
user, a page of 20 groups, PATCH 204, a $batch of 20 user reads), so the difference between the
two columns is the proxy: a second HTTP hop (a fresh upstream connection per call) plus
openapi-core checking the request and the answer. Prints the proxy's start-up time too.
"""

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
# GRAPH_PROXY_SCRIPT: another version of the proxy, to compare two side by side
PROXY = os.environ.get("GRAPH_PROXY_SCRIPT") or os.path.join(HERE, "..", "python", "graph_proxy.py")
USER = "6e7b768e-07e2-4810-8459-485f84f8f204"


def user(uid):
    return {"@odata.type": "#microsoft.graph.user", "id": uid, "accountEnabled": True,
            "userPrincipalName": f"{uid}@example.com", "mail": f"{uid}@example.com",
            "otherMails": [], "proxyAddresses": [f"SMTP:{uid}@example.com"], "employeeId": "1",
            "assignedLicenses": [{"skuId": "c7df2760-2c81-4ef7-b578-5b5392b571df", "disabledPlans": []}],
            "licenseAssignmentStates": [{"skuId": "c7df2760-2c81-4ef7-b578-5b5392b571df",
                                         "assignedByGroup": None, "state": "Active", "error": "None",
                                         "disabledPlans": []}]}


GROUPS = {"value": [{"@odata.type": "#microsoft.graph.group", "id": f"g{i}", "displayName": f"G{i}",
                     "groupTypes": ["Unified"] if i % 2 else [], "mailEnabled": bool(i % 3),
                     "securityEnabled": True, "onPremisesSyncEnabled": None, "membershipRule": None}
                    for i in range(20)]}


class Up(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    def any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        path = self.path.split("?")[0]
        if self.command == "PATCH":
            return self.out(204, None)
        if path.endswith("/$batch"):
            reqs = json.loads(body)["requests"]
            return self.out(200, {"responses": [
                {"id": r["id"], "status": 200, "headers": {"Content-Type": "application/json"},
                 "body": user(r["url"].split("/")[2].split("?")[0])} for r in reqs]})
        if path.endswith("/memberOf"):
            return self.out(200, GROUPS)
        return self.out(200, user(path.rsplit("/", 1)[1]))

    do_GET = do_POST = do_PATCH = any

    def out(self, status, obj):
        data = json.dumps(obj).encode() if obj is not None else b""
        self.send_response(status)
        if obj is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


KINDS = [
    ("GET /users/{id}?$select=...", "GET", f"/v1.0/users/{USER}?$select=id,userPrincipalName,mail,otherMails,"
     "proxyAddresses,employeeId,accountEnabled,assignedLicenses,licenseAssignmentStates", None),
    ("GET memberOf (20 groups)", "GET", f"/v1.0/users/{USER}/memberOf?$select=id,displayName,groupTypes,"
     "mailEnabled,securityEnabled,onPremisesSyncEnabled,membershipRule", None),
    ("PATCH accountEnabled", "PATCH", f"/v1.0/users/{USER}", {"accountEnabled": False}),
    ("POST $batch (20 GET user)", "POST", "/v1.0/$batch", {"requests": [
        {"id": str(i), "method": "GET", "url": f"/users/u{i}?$select=id,accountEnabled"} for i in range(20)]}),
]


def run(port, n):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    out = {}
    for name, method, path, body in KINDS:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json"} if data else {}
        for i in range(n + 10):
            if i == 10:
                t0 = time.perf_counter()  # the first 10 warm up
            conn.request(method, path, body=data, headers=hdrs)
            r = conn.getresponse()
            r.read()
            assert r.status in (200, 204), (name, r.status)
        out[name] = (time.perf_counter() - t0) / n
    conn.close()
    return out


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    up = ThreadingHTTPServer(("127.0.0.1", 0), Up)
    threading.Thread(target=up.serve_forever, daemon=True).start()
    up_port = up.server_address[1]
    t0 = time.perf_counter()
    proxy = subprocess.Popen([sys.executable, PROXY, "--upstream", f"http://127.0.0.1:{up_port}/v1.0"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proxy.stdout.readline()
        startup = time.perf_counter() - t0
        port = int(line.rsplit(":", 1)[1])
        direct = run(up_port, n)
        proxied = run(port, n)
        conn = http.client.HTTPConnection("127.0.0.1", port)
        conn.request("GET", "/__proxy/report")
        report = json.loads(conn.getresponse().read())
        print(f"proxy start-up (python, openapi-core, the trimmed spec): {startup:.2f} s")
        print(f"{'call':34} {'direct ms':>10} {'proxied ms':>11} {'overhead ms':>12}")
        for name, _, _, _ in KINDS:
            d, p = direct[name] * 1e3, proxied[name] * 1e3
            print(f"{name:34} {d:10.2f} {p:11.2f} {p - d:12.2f}")
        calls = report["calls"]
        print(f"checking alone: {report['check_seconds'] / calls * 1e3:.2f} ms a call on average over {calls} calls; "
              f"{len(report['violations'])} violations, {len(report['allowed'])} allowances applied")
        if report["violations"]:
            print(json.dumps(report["violations"][:5], indent=1))
    finally:
        proxy.terminate()
        proxy.wait()
        up.shutdown()


if __name__ == "__main__":
    main()
