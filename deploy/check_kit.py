#!/usr/bin/env python3
"""Offline checks of the deployment kit that a schema cannot make (deploy/check.sh runs them).

- kustomize layout: every file a kustomization.yaml lists exists, and every manifest
  beside it is listed (`kubectl kustomize` is not assumed to be installed);
- settings: every WFE__ name in the manifests and the deployment docs is a key of
  config/default.toml, as the engine itself demands at start-up;
- the Deployment against the engine: the port it binds, the probes' paths, the grace
  period against the hand-over time, the image's user, the Service and the
  PodDisruptionBudget selecting its pods;
- the Prometheus operator resources against the CRD schemas vendored in deploy/schemas/
  (strict: unknown fields are errors), the ServiceMonitor selecting the Service and
  giving the job name the alerts expect, the PrometheusRule equal to deploy/alerts.yml;
- every alert's runbook_url leading to a section of docs/runbook.md;
- the Grafana dashboard's structure, and every metric that the dashboard and the alerts
  use being one that docs/deployment.md documents.

    python3 deploy/check_kit.py                       # all of the above
    python3 deploy/check_kit.py --list-core           # manifests for kubernetes-validate
    python3 deploy/check_kit.py --dashboard-rules F   # the dashboard's queries as a rules
                                                      # file, for `promtool check rules F`
    python3 deploy/check_kit.py --extract-crd-schemas CRD.yaml...
                                                      # rewrites deploy/schemas/ from the
                                                      # operator's CRD files

Needs PyYAML and jsonschema (both come with kubernetes-validate) and Python 3.11.
"""

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

import jsonschema
import yaml

sys.dont_write_bytecode = True  # no __pycache__ left in deploy/
sys.path.insert(0, str(Path(__file__).resolve().parent))
import prometheusrule  # noqa: E402  (the generator, beside this file)

ROOT = Path(__file__).resolve().parent.parent
KUBE = ROOT / "deploy" / "kubernetes"
MONITORING = KUBE / "monitoring"
ALERTS = ROOT / "deploy" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "workflow-engine.json"
SCHEMAS = ROOT / "deploy" / "schemas" / "monitoring.coreos.com_v1.json"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DEFAULTS = ROOT / "config" / "default.toml"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"
RUNBOOK = ROOT / "docs" / "runbook.md"

# Kinds served by the Prometheus operator's CRDs: kept out of the core folder, validated
# against the vendored schemas instead of Kubernetes' own.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
# What the engine needs to stop: a 20 s hand-over, 10 s for the executors' mailboxes,
# the group's leave (docs/deployment.md, "Running it": "Give it 40 s").
SHUTDOWN_SECS = 40
RUNBOOK_SUFFIX = "/docs/runbook.md#"

errors: list[str] = []


def fail(where: object, message: str) -> None:
    errors.append(f"{where}: {message}")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def documents(path: Path) -> list[dict]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as e:
        fail(rel(path), f"not YAML: {e}")
        return []
    for d in docs:
        if not isinstance(d, dict):
            fail(rel(path), "a document that is not a mapping")
    return [d for d in docs if isinstance(d, dict)]


# ---------------------------------------------------------------- kustomize layout


def kustomization(folder: Path) -> list[Path]:
    """The files folder/kustomization.yaml lists, after checking it against the folder."""
    path = folder / "kustomization.yaml"
    if not path.exists():
        fail(rel(folder), "no kustomization.yaml")
        return []
    k = yaml.safe_load(path.read_text()) or {}
    if k.get("apiVersion") != "kustomize.config.k8s.io/v1beta1" or k.get("kind") != "Kustomization":
        fail(rel(path), "not a kustomize.config.k8s.io/v1beta1 Kustomization")
    listed = k.get("resources") or []
    files = []
    for entry in listed:
        target = folder / entry
        if not target.is_file():
            fail(rel(path), f"lists {entry}, which is not a file here")
        else:
            files.append(target)
    if len(set(listed)) != len(listed):
        fail(rel(path), "lists a file twice")
    for manifest in sorted(folder.glob("*.y*ml")):
        if manifest.name != "kustomization.yaml" and manifest.name not in listed:
            fail(rel(manifest), f"not listed in {rel(path)}: `kubectl apply -k` would skip it")
    return files


def layout() -> tuple[list[Path], list[Path]]:
    core = kustomization(KUBE)
    monitoring = kustomization(MONITORING)
    for folder in sorted(p for p in KUBE.rglob("*") if p.is_dir()):
        if folder != MONITORING and any(folder.glob("*.y*ml")):
            fail(rel(folder), "manifests in a folder no kustomization.yaml covers")
    return core, monitoring


def resources(files: list[Path]) -> list[tuple[Path, dict]]:
    out = []
    for path in files:
        for doc in documents(path):
            meta = doc.get("metadata") or {}
            if not doc.get("apiVersion") or not doc.get("kind") or not meta.get("name"):
                fail(rel(path), "a document without apiVersion, kind or metadata.name")
                continue
            if "namespace" in meta:
                fail(rel(path), f"{doc['kind']}/{meta['name']} sets a namespace: the kit is applied with -n or an overlay's `namespace`")
            out.append((path, doc))
    seen = set()
    for path, doc in out:
        key = (doc["kind"], doc["metadata"]["name"])
        if key in seen:
            fail(rel(path), f"{key[0]}/{key[1]} defined twice")
        seen.add(key)
    return out


def one(items: list[tuple[Path, dict]], kind: str) -> tuple[Path, dict] | tuple[None, None]:
    found = [(p, d) for p, d in items if d["kind"] == kind]
    if len(found) != 1:
        fail("deploy/kubernetes", f"expected one {kind}, found {len(found)}")
        return None, None
    return found[0]


# ---------------------------------------------------------------- settings


def known_keys() -> set[str]:
    """Dotted keys of config/default.toml; kafka.properties is open-ended (librdkafka's)."""
    keys: set[str] = set()

    def walk(prefix: str, table: dict) -> None:
        for key, value in table.items():
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict) and path != "kafka.properties":
                walk(path, value)
            else:
                keys.add(path)

    walk("", tomllib.loads(DEFAULTS.read_text()))
    return keys


def setting_of(variable: str, known: set[str]) -> str | None:
    """The problem with a WFE__ variable name, or None when the engine accepts it."""
    if variable.upper().startswith("WFE__KAFKA__PROPERTIES__"):
        return None if len(variable) > len("WFE__KAFKA__PROPERTIES__") else "names no property"
    key = variable[len("WFE__"):].lower().replace("__", ".")
    return None if key in known else f"no setting {key} in config/default.toml: the engine refuses to start on it"


def settings(core: list[tuple[Path, dict]]) -> None:
    known = known_keys()
    _, config_map = one(core, "ConfigMap")
    for name in (config_map or {}).get("data", {}) or {}:
        if not name.startswith("WFE__"):
            fail("deploy/kubernetes/configmap.yaml", f"{name}: the ConfigMap is read with envFrom, so every key should be a WFE__ setting")
        elif problem := setting_of(name, known):
            fail("deploy/kubernetes/configmap.yaml", f"{name}: {problem}")
    # Names in comments and prose too: an operator copies them from there.
    texts = [*KUBE.rglob("*.yaml"), DEPLOYMENT_DOC, RUNBOOK]
    for path in texts:
        for variable in sorted(set(re.findall(r"\bWFE__[A-Z0-9_]*[A-Z0-9]", path.read_text()))):
            if variable == "WFE__SECTION__KEY":
                continue
            if problem := setting_of(variable, known):
                fail(rel(path), f"{variable}: {problem}")


# ---------------------------------------------------------------- the Deployment


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def cores(quantity: str) -> float:
    q = str(quantity)
    return int(q[:-1]) / 1000 if q.endswith("m") else float(q)


def workload(core: list[tuple[Path, dict]]) -> dict | None:
    path, deployment = one(core, "Deployment")
    _, service = one(core, "Service")
    _, pdb = one(core, "PodDisruptionBudget")
    _, config_map = one(core, "ConfigMap")
    _, account = one(core, "ServiceAccount")
    if not deployment:
        return None
    where = rel(path)
    spec = deployment["spec"]
    template = spec["template"]
    labels = template["metadata"]["labels"]
    pod = template["spec"]
    if not selects(spec["selector"].get("matchLabels", {}), labels):
        fail(where, "the selector does not match the pod template's labels")
    if not isinstance(spec.get("replicas"), int) or spec["replicas"] < 1:
        fail(where, "replicas should be set (at most the topic's partition count)")
    containers = pod["containers"]
    if len(containers) != 1:
        fail(where, "expected one container")
        return service
    c = containers[0]
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    if "http" not in ports:
        fail(where, "no container port named http")
    data = (config_map or {}).get("data", {})
    bind = data.get("WFE__HTTP__BIND", "")
    host, _, port = bind.rpartition(":")
    if host in ("127.0.0.1", "localhost", "[::1]"):
        fail("deploy/kubernetes/configmap.yaml", f"WFE__HTTP__BIND={bind} listens on loopback: probes and Prometheus could not reach it")
    if not port.isdigit() or int(port) != ports.get("http"):
        fail(where, f"container port http ({ports.get('http')!r}) is not the port of WFE__HTTP__BIND ({bind})")
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    known = known_keys()
    for name in env:
        if name.startswith("WFE__") and (problem := setting_of(name, known)):
            fail(where, f"{name}: {problem}")
    config_file = env.get("WFE_CONFIG")
    if config_file:
        mounts = [m["mountPath"].rstrip("/") for m in c.get("volumeMounts", [])]
        if str(Path(config_file).parent) not in mounts:
            fail(where, f"WFE_CONFIG={config_file} is not under a mounted volume (start-up stops on a missing file)")
    sources = c.get("envFrom", [])
    if not any(s.get("configMapRef", {}).get("name") == (config_map or {}).get("metadata", {}).get("name") for s in sources):
        fail(where, "envFrom does not read the kit's ConfigMap")
    if pod.get("serviceAccountName") != (account or {}).get("metadata", {}).get("name"):
        fail(where, "serviceAccountName is not the kit's ServiceAccount")
    # Secrets the operator creates: the docs must say how.
    doc = DEPLOYMENT_DOC.read_text()
    secrets = [s["secretRef"]["name"] for s in sources if "secretRef" in s]
    secrets += [v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v]
    for name in secrets:
        if not re.search(rf"create secret generic {re.escape(name)}(?![\w-])", doc):
            fail(where, f"Secret {name} is read but docs/deployment.md does not show how to create it")
    # Probes: /healthz is the process answering, /readyz whether it can serve.
    wanted = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path_ in wanted.items():
        get = c.get(probe, {}).get("httpGet", {})
        if get.get("path") != path_ or get.get("port") not in ("http", ports.get("http")):
            fail(where, f"{probe} should GET {path_} on port http")
    readiness = c.get("readinessProbe", {})
    if readiness.get("timeoutSeconds", 1) < 5:
        fail(where, "readinessProbe.timeoutSeconds under 5: /readyz may take 2 s for the database and 2 s for the brokers")
    # Shutdown: the grace period covers the preStop pause and the hand-over.
    pause = 0
    command = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    if command[:1] == ["sleep"] and len(command) == 2:
        pause = int(command[1])
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace < SHUTDOWN_SECS + pause:
        fail(where, f"terminationGracePeriodSeconds {grace} < {SHUTDOWN_SECS} s of hand-over + {pause} s of preStop")
    # Security: the image's user, and nothing written to the image.
    uid = re.search(r"^USER\s+(\d+)", DOCKERFILE.read_text(), re.M)
    pod_sc, sc = pod.get("securityContext", {}), c.get("securityContext", {})
    if not (pod_sc.get("runAsNonRoot") or sc.get("runAsNonRoot")):
        fail(where, "runAsNonRoot is not set")
    if uid and pod_sc.get("runAsUser", sc.get("runAsUser")) != int(uid.group(1)):
        fail(where, f"runAsUser is not the image's user {uid.group(1)} (deploy/Dockerfile)")
    if sc.get("readOnlyRootFilesystem") is not True or sc.get("allowPrivilegeEscalation") is not False:
        fail(where, "the container should have readOnlyRootFilesystem: true and allowPrivilegeEscalation: false")
    # Executor threads follow the CPU request (one per core).
    arbiters = data.get("WFE__ENGINE__ARBITERS")
    request = c.get("resources", {}).get("requests", {}).get("cpu")
    if not c.get("resources", {}).get("limits", {}).get("memory") or not request:
        fail(where, "resources: a CPU request and a memory limit are expected")
    elif arbiters is None or int(arbiters) != cores(request):
        fail(where, f"WFE__ENGINE__ARBITERS ({arbiters}) should equal the CPU request ({request})")
    # Service and PodDisruptionBudget reach these pods.
    if service:
        if not selects(service["spec"].get("selector", {}), labels):
            fail("deploy/kubernetes/service.yaml", "the selector does not match the Deployment's pods")
        for p in service["spec"].get("ports", []):
            if p.get("targetPort") not in ("http", ports.get("http")):
                fail("deploy/kubernetes/service.yaml", f"port {p.get('name')} does not target the container's http port")
    if pdb:
        if not selects(pdb["spec"].get("selector", {}).get("matchLabels", {}), labels):
            fail("deploy/kubernetes/poddisruptionbudget.yaml", "the selector does not match the Deployment's pods")
        if pdb["spec"].get("maxUnavailable") != 1:
            fail("deploy/kubernetes/poddisruptionbudget.yaml", "maxUnavailable should be 1: one hand-over at a time")
    return service


# ---------------------------------------------------------------- Prometheus operator


def strict(schema: object) -> object:
    """The schema with unknown fields refused wherever it names the fields it knows (the API
    server prunes them silently; here they are mistakes)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if isinstance(out.get("properties"), dict):
        out["properties"] = {name: strict(s) for name, s in out["properties"].items()}
        if "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = strict(out[key])
    for key in ("anyOf", "allOf", "oneOf"):
        if isinstance(out.get(key), list):
            out[key] = strict(out[key])
    return out


def alert_rules() -> list[dict]:
    return [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]


def monitoring(items: list[tuple[Path, dict]], service: dict | None) -> None:
    vendored = json.loads(SCHEMAS.read_text())
    for path, doc in items:
        kind = doc["kind"]
        if kind not in CRD_KINDS or doc["apiVersion"] != "monitoring.coreos.com/v1":
            fail(rel(path), f"{doc['apiVersion']} {kind}: only monitoring.coreos.com/v1 {sorted(CRD_KINDS)} belong here")
            continue
        validator = jsonschema.Draft4Validator(strict(vendored[kind]))
        for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
            at = ".".join(str(p) for p in error.absolute_path) or "(top)"
            fail(rel(path), f"{kind} {at}: {error.message}")
    jobs = {m for r in alert_rules() for m in re.findall(r'job="([^"]+)"', r["expr"])}
    _, monitor = one(items, "ServiceMonitor")
    if monitor and service:
        where = "deploy/kubernetes/monitoring/servicemonitor.yaml"
        spec = monitor["spec"]
        service_labels = service["metadata"].get("labels", {})
        if not selects(spec["selector"].get("matchLabels", {}), service_labels):
            fail(where, "the selector does not match the Service's labels")
        names = {p.get("name") for p in service["spec"]["ports"]}
        for endpoint in spec.get("endpoints", []):
            if endpoint.get("port") not in names:
                fail(where, f"endpoint port {endpoint.get('port')} is not a port of the Service")
            if endpoint.get("path", "/metrics") != "/metrics":
                fail(where, "the engine serves its metrics at /metrics")
        job = service_labels.get(spec.get("jobLabel", ""), service["metadata"]["name"])
        if jobs and jobs != {job}:
            fail(where, f"scraped series get job={job!r}, the alerts select job={sorted(jobs)}")
    path, rule = one(items, "PrometheusRule")
    if rule:
        if rule["spec"].get("groups") != yaml.safe_load(ALERTS.read_text())["groups"]:
            fail(rel(path), "its groups are not those of deploy/alerts.yml")
        if path.read_text() != prometheusrule.render(ALERTS.read_text()):
            fail(rel(path), "out of date: run `python3 deploy/prometheusrule.py`")


# ---------------------------------------------------------------- runbook


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook() -> None:
    text = RUNBOOK.read_text()
    headings = re.findall(r"^#{1,6}\s+(.+)$", text, re.M)
    anchors = {slug(h) for h in headings}
    sections = {h.strip() for h in re.findall(r"^##\s+(.+)$", text, re.M)}
    rules = alert_rules()
    names = {r["alert"] for r in rules}
    bases = set()
    for r in rules:
        url = r.get("annotations", {}).get("runbook_url", "")
        where = f"deploy/alerts.yml {r['alert']}"
        if RUNBOOK_SUFFIX not in url or not re.match(r"https?://", url):
            fail(where, f"runbook_url {url!r} is not <base>{RUNBOOK_SUFFIX}<anchor>")
            continue
        base, anchor = url.split(RUNBOOK_SUFFIX, 1)
        bases.add(base)
        if anchor not in anchors:
            fail(where, f"runbook_url anchor #{anchor} is no heading of docs/runbook.md")
        if r["alert"] not in sections:
            fail(where, "docs/runbook.md has no `## <alert name>` section")
    if len(bases) > 1:
        fail("deploy/alerts.yml", f"runbook_url bases differ: {sorted(bases)}")
    for section in sections:
        if section.startswith("WorkflowEngine") and section not in names:
            fail("docs/runbook.md", f"section {section} is for no alert of deploy/alerts.yml")


# ---------------------------------------------------------------- metrics and dashboard


def documented_metrics() -> set[str]:
    text = DEPLOYMENT_DOC.read_text()
    match = re.search(r"^## What to monitor.*?(?=^## )", text, re.M | re.S)
    if not match:
        fail("docs/deployment.md", "no `## What to monitor` section")
        return set()
    return set(re.findall(r"\b((?:wfe|process)_[a-z0-9_]+)", match.group(0)))


def metrics_in(expr: str) -> set[str]:
    # Label values and names inside {...} are not metrics.
    bare = re.sub(r'"[^"]*"', '""', expr)
    return set(re.findall(r"\b((?:wfe|process)_[a-z0-9_]+)", bare))


def undocumented(metric: str, documented: set[str]) -> bool:
    for suffix in ("_bucket", "_sum", "_count"):
        if metric.endswith(suffix) and metric[: -len(suffix)] in documented:
            return False
    return metric not in documented


def dashboard_targets(dashboard: dict) -> list[tuple[dict, dict]]:
    return [(p, t) for p in dashboard.get("panels", []) if p.get("type") != "row" for t in p.get("targets", [])]


def dashboard() -> dict:
    where = rel(DASHBOARD)
    try:
        d = json.loads(DASHBOARD.read_text())
    except json.JSONDecodeError as e:
        fail(where, f"not JSON: {e}")
        return {}
    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 36:
        fail(where, "schemaVersion should be a number of Grafana 9 or later")
    for key in ("uid", "title"):
        if not d.get(key):
            fail(where, f"no {key}")
    variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
    ds = variables.get("DS_PROMETHEUS", {})
    if ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        fail(where, "no `DS_PROMETHEUS` variable of type datasource (prometheus)")
    wanted_ds = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    for v in variables.values():
        if v.get("type") == "query" and v.get("datasource") != wanted_ds:
            fail(where, f"variable {v.get('name')} does not query ${{DS_PROMETHEUS}}")
    ids = [p.get("id") for p in d.get("panels", [])]
    if len(ids) != len(set(ids)) or None in ids:
        fail(where, "panel ids missing or repeated")
    for p in d.get("panels", []):
        grid = p.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in "hwxy") or grid["x"] + grid["w"] > 24:
            fail(where, f"panel {p.get('id')}: gridPos outside the 24 columns")
        if p.get("type") == "row":
            continue
        if p.get("datasource") != wanted_ds:
            fail(where, f"panel {p.get('id')} ({p.get('title')}): datasource is not ${{DS_PROMETHEUS}}")
        refs = [t.get("refId") for t in p.get("targets", [])]
        if not refs or len(refs) != len(set(refs)):
            fail(where, f"panel {p.get('id')}: targets missing or refIds repeated")
        for t in p.get("targets", []):
            if t.get("datasource") != wanted_ds or not t.get("expr"):
                fail(where, f"panel {p.get('id')} target {t.get('refId')}: no expr or another datasource")
    used = set().union(*(metrics_in(t.get("expr", "")) for _, t in dashboard_targets(d)))
    # What the dashboard exists to show (the issue): lag, mailbox depth, runs by outcome,
    # delivery latency, and the rest of the first-look set.
    for metric in ("wfe_consumer_lag", "wfe_mailbox_depth", "wfe_events_total", "wfe_runs_total",
                   "wfe_action_duration_seconds_bucket", "wfe_delivery_attempts_total", "wfe_db_retries_total"):
        if metric not in used:
            fail(where, f"no panel shows {metric}")
    return d


def metrics(d: dict) -> None:
    documented = documented_metrics()
    for r in alert_rules():
        for m in sorted(metrics_in(r["expr"])):
            if undocumented(m, documented):
                fail(f"deploy/alerts.yml {r['alert']}", f"{m} is not in docs/deployment.md, \"What to monitor\"")
    for p, t in dashboard_targets(d):
        for m in sorted(metrics_in(t.get("expr", ""))):
            if undocumented(m, documented):
                fail(rel(DASHBOARD), f"panel {p.get('title')!r}: {m} is not in docs/deployment.md, \"What to monitor\"")


def dashboard_rules(out: Path) -> None:
    """Each dashboard query as a recording rule, Grafana's variables given values, so
    that promtool parses every query."""
    d = json.loads(DASHBOARD.read_text())
    values = {"$__rate_interval": "1m", "$__interval": "1m", "$job": "workflow-engine", "$instance": ".*"}
    rules = []
    for p, t in dashboard_targets(d):
        expr = t["expr"]
        for name, value in values.items():
            expr = expr.replace(name, value)
        if "$" in expr:
            fail(rel(DASHBOARD), f"panel {p.get('id')}: a variable this check does not know in {t['expr']!r}")
        rules.append({"record": f"dashboard_panel_{p['id']}_{t['refId']}", "expr": expr})
    out.write_text(yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}, sort_keys=False))


# ---------------------------------------------------------------- vendored schemas


def extract_crd_schemas(files: list[Path]) -> None:
    """deploy/schemas/ from the Prometheus operator's CRD files
    (example/prometheus-operator-crd/monitoring.coreos.com_{servicemonitors,prometheusrules}.yaml
    of its repository): the v1 openAPIV3Schema of each kind, descriptions dropped."""

    def bare(o: object) -> object:
        if isinstance(o, dict):
            return {k: bare(v) for k, v in o.items() if not (k == "description" and isinstance(v, str))}
        if isinstance(o, list):
            return [bare(v) for v in o]
        return o

    out: dict = {}
    versions = set()
    for f in files:
        crd = yaml.safe_load(f.read_text())
        kind = crd["spec"]["names"]["kind"]
        version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
        out[kind] = bare(version["schema"]["openAPIV3Schema"])
        versions.add(crd["metadata"].get("annotations", {}).get("operator.prometheus.io/version", "?"))
    out["_source"] = (
        f"prometheus-operator {', '.join(sorted(versions))}: the v1 openAPIV3Schema of "
        "example/prometheus-operator-crd/monitoring.coreos.com_{servicemonitors,prometheusrules}.yaml, "
        "descriptions dropped (Apache-2.0). Made by `python3 deploy/check_kit.py --extract-crd-schemas`."
    )
    SCHEMAS.parent.mkdir(parents=True, exist_ok=True)
    SCHEMAS.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {rel(SCHEMAS)} ({', '.join(sorted(k for k in out if not k.startswith('_')))})")


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list-core", action="store_true", help="print the core manifests' paths")
    parser.add_argument("--dashboard-rules", type=Path, metavar="FILE")
    parser.add_argument("--extract-crd-schemas", type=Path, nargs="+", metavar="CRD")
    args = parser.parse_args()
    if args.extract_crd_schemas:
        extract_crd_schemas(args.extract_crd_schemas)
        return 0
    if args.list_core:
        core, _ = layout()
        print("\n".join(str(p) for p in core))
    elif args.dashboard_rules:
        dashboard_rules(args.dashboard_rules)
    else:
        core_files, monitoring_files = layout()
        core = resources(core_files)
        for path, doc in core:
            if doc["kind"] in CRD_KINDS:
                fail(rel(path), f"{doc['kind']} needs the Prometheus operator's CRDs: it belongs in monitoring/")
        settings(core)
        service = workload(core)
        monitoring(resources(monitoring_files), service)
        runbook()
        metrics(dashboard())
    for e in dict.fromkeys(errors):
        print(f"FAIL {e}", file=sys.stderr)
    if errors:
        return 1
    if not (args.list_core or args.dashboard_rules):
        print("kit checks passed: layout, settings, Deployment, monitoring resources, runbook links, dashboard")
    return 0


if __name__ == "__main__":
    sys.exit(main())
