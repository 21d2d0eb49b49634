"""Checks deploy/kubernetes the way a cluster would, without a cluster.

  python tests/deploy/check_k8s.py deploy/kubernetes

1. Every built-in object (Namespace, ConfigMap, Deployment, Service, PodDisruptionBudget, the
   example Secrets) against the Kubernetes OpenAPI schemas with kubernetes-validate, strict (an
   unknown field is an error), for the oldest version the manifests claim (1.30: the preStop
   `sleep` action) and the newest schema the package ships.
2. The ServiceMonitor (a CRD, which kubernetes-validate has no schema for) against the
   openAPIV3Schema of Prometheus Operator's own CRD (tests/deploy/crds/, from
   prometheus-operator/prometheus-operator v0.93.0, Apache-2.0), plus the field pruning the API
   server does: a field the schema does not name would be dropped silently, so it is an error.
3. The references between them: selectors, port names, probe paths, volumes, Secret keys, the
   restricted security context, replicas and the disruption budget.

Prints one JSON object on stdout (what crates/daemon/tests/deploy_files.rs checks against
revoked itself: the config, where secrets are mounted, the grace period); every problem goes to
stderr and the exit code is 1.
"""

import json
import os
import sys

import jsonschema
import kubernetes_validate
import yaml

VERSIONS = ["1.30.0", "1.37.0"]
HERE = os.path.dirname(os.path.abspath(__file__))
CRDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): os.path.join(
        HERE, "crds", "monitoring.coreos.com_servicemonitors.yaml"
    ),
}
# The files kustomization.yaml must not list (applied by hand, with real values).
NOT_IN_KUSTOMIZATION = {"secret.example.yaml"}

problems = []


def problem(msg):
    problems.append(msg)


def load_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def crd_schema(path, api_version):
    (crd,) = load_docs(path)
    group = crd["spec"]["group"]
    for v in crd["spec"]["versions"]:
        if f"{group}/{v['name']}" == api_version:
            return v["schema"]["openAPIV3Schema"]
    raise SystemExit(f"{path}: expected version {api_version}, found none")


def pruned_fields(obj, schema, path):
    """Fields the API server would drop: not named by a structural schema."""
    if not isinstance(schema, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    out = []
    if isinstance(obj, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for k, v in obj.items():
            if props is not None and k in props:
                out += pruned_fields(v, props[k], f"{path}.{k}")
            elif isinstance(extra, dict):
                out += pruned_fields(v, extra, f"{path}.{k}")
            elif props is not None and extra is not True:
                out.append(f"{path}.{k}")
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(obj):
            out += pruned_fields(v, schema["items"], f"{path}[{i}]")
    return out


def validate_object(fname, doc):
    key = (doc.get("apiVersion"), doc.get("kind"))
    name = f"{fname}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    if key in CRDS:
        schema = crd_schema(CRDS[key], key[0])
        for e in jsonschema.Draft7Validator(schema).iter_errors(doc):
            problem(f"{name}: {'.'.join(str(p) for p in e.absolute_path)}: {e.message}")
        for f in pruned_fields(doc, schema, ""):
            problem(f"{name}: {f} is no field of the CRD's schema (the API server would drop it)")
        return
    for v in VERSIONS:
        try:
            kubernetes_validate.validate(doc, v, strict=True)
        except kubernetes_validate.ValidationError as e:
            where = ".".join(str(p) for p in e.path)
            problem(f"{name}: invalid for Kubernetes {v}: {where}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError:
            problem(f"{name}: no schema for {key} in Kubernetes {v}")


def subset(small, big):
    return all(big.get(k) == v for k, v in (small or {}).items())


def main(directory):
    files = sorted(f for f in os.listdir(directory) if f.endswith(".yaml"))
    with open(os.path.join(directory, "kustomization.yaml"), encoding="utf-8") as f:
        kustomization = yaml.safe_load(f)
    listed = set(kustomization.get("resources", []))
    for f in files:
        if f == "kustomization.yaml":
            continue
        if f in NOT_IN_KUSTOMIZATION:
            if f in listed:
                problem(f"kustomization.yaml lists {f}: its placeholder secrets would overwrite real ones")
        elif f not in listed:
            problem(f"kustomization.yaml does not list {f}")
    for r in listed:
        if r not in files:
            problem(f"kustomization.yaml lists {r}, which does not exist")

    objects = {}
    for f in files:
        if f == "kustomization.yaml":
            continue
        for doc in load_docs(os.path.join(directory, f)):
            validate_object(f, doc)
            objects[(doc["kind"], doc["metadata"]["name"])] = doc

    def get(kind, name):
        o = objects.get((kind, name))
        if o is None:
            problem(f"expected a {kind} named {name}, found none")
        return o or {}

    deploy = get("Deployment", "revoked")
    spec = deploy.get("spec", {})
    pod = spec.get("template", {})
    pod_labels = pod.get("metadata", {}).get("labels", {})
    pod_spec = pod.get("spec", {})
    if not subset(spec.get("selector", {}).get("matchLabels"), pod_labels):
        problem("Deployment: selector does not match the pod template's labels")
    if spec.get("replicas", 1) < 2:
        problem(f"Deployment: expected 2 or more replicas, found {spec.get('replicas', 1)}")
    containers = pod_spec.get("containers", [])
    if len(containers) != 1:
        problem(f"Deployment: expected one container, found {len(containers)}")
        return
    c = containers[0]
    port_names = {p["name"]: p["containerPort"] for p in c.get("ports", [])}

    probes = {}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get_ = c.get(probe, {}).get("httpGet")
        if not get_:
            problem(f"Deployment: expected an httpGet {probe}, found none")
            continue
        probes[probe] = get_["path"]
        if get_["port"] not in port_names and get_["port"] not in port_names.values():
            problem(f"Deployment: {probe} port {get_['port']} is no container port")
    if probes.get("livenessProbe") != "/livez" or probes.get("readinessProbe") != "/readyz":
        problem(f"Deployment: expected liveness on /livez and readiness on /readyz, found {probes}")

    psc = pod_spec.get("securityContext", {})
    csc = c.get("securityContext", {})
    if not psc.get("runAsNonRoot") or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problem("Deployment: expected runAsNonRoot and a RuntimeDefault seccomp profile")
    if not csc.get("readOnlyRootFilesystem") or csc.get("allowPrivilegeEscalation") is not False:
        problem("Deployment: expected a read-only root filesystem and no privilege escalation")
    if csc.get("capabilities", {}).get("drop") != ["ALL"]:
        problem("Deployment: expected every capability dropped (drop: [ALL])")

    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    for m in mounts:
        if m not in volumes:
            problem(f"Deployment: volumeMount {m} names no volume")
    config_mount = secret_mount = None
    config_text = None
    secrets = {}
    for name, v in volumes.items():
        if name not in mounts:
            problem(f"Deployment: volume {name} is mounted nowhere")
            continue
        if "configMap" in v:
            cm = get("ConfigMap", v["configMap"]["name"])
            config_mount = mounts[name]
            config_text = cm.get("data", {}).get("revoke.toml")
        if "secret" in v:
            s = get("Secret", v["secret"]["secretName"])
            secret_mount = mounts[name]
            secrets = s.get("stringData", {})
    env = {}
    for e in c.get("env", []):
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            s = get("Secret", ref["name"])
            if ref["key"] not in s.get("stringData", {}):
                problem(f"Deployment: env {e['name']} names key {ref['key']}, not in Secret {ref['name']}")
            else:
                env[e["name"]] = s["stringData"][ref["key"]]
        elif "value" in e:
            env[e["name"]] = e["value"]

    svc = get("Service", "revoked")
    if not subset(svc.get("spec", {}).get("selector"), pod_labels):
        problem("Service: selector does not match the pods")
    svc_ports = {p["name"]: p for p in svc.get("spec", {}).get("ports", [])}
    for p in svc_ports.values():
        if p.get("targetPort") not in port_names and p.get("targetPort") not in port_names.values():
            problem(f"Service: targetPort {p.get('targetPort')} is no container port")

    pdb = get("PodDisruptionBudget", "revoked")
    if not subset(pdb.get("spec", {}).get("selector", {}).get("matchLabels"), pod_labels):
        problem("PodDisruptionBudget: selector does not match the pods")
    if not 1 <= pdb.get("spec", {}).get("minAvailable", 0) < spec.get("replicas", 1):
        problem("PodDisruptionBudget: expected 1 <= minAvailable < replicas")

    sm = get("ServiceMonitor", "revoked")
    if not subset(sm.get("spec", {}).get("selector", {}).get("matchLabels"), svc.get("metadata", {}).get("labels", {})):
        problem("ServiceMonitor: selector does not match the Service's labels")
    for ep in sm.get("spec", {}).get("endpoints", []):
        if ep.get("port") not in svc_ports:
            problem(f"ServiceMonitor: port {ep.get('port')} is no port name of the Service")
        if ep.get("path") != "/metrics":
            problem(f"ServiceMonitor: expected path /metrics, found {ep.get('path')}")

    pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    json.dump(
        {
            "config_mount": config_mount,
            "config": config_text,
            "args": c.get("args", []),
            "secret_mount": secret_mount,
            "secrets": secrets,
            "env": env,
            "container_port": port_names.get("http"),
            "termination_grace_secs": pod_spec.get("terminationGracePeriodSeconds", 30),
            "pre_stop_sleep_secs": pre_stop,
            "probes": probes,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main(sys.argv[1])
    for p in problems:
        print(f"problem: {p}", file=sys.stderr)
    sys.exit(1 if problems else 0)
