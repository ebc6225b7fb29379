#!/usr/bin/env bash
# Validates the deployment kit offline (docs/deployment.md, "What CI checks"):
#   - deploy/kubernetes/*.yaml against the Kubernetes API schemas, strictly, for every
#     version from 1.29 to 1.37 (kubernetes-validate bundles them: no network);
#   - deploy/check_kit.py: the kustomize layout, settings names, the Deployment against
#     the engine, the ServiceMonitor and PrometheusRule against the vendored CRD schemas
#     (deploy/schemas/), the PrometheusRule against deploy/alerts.yml, the runbook links,
#     the dashboard's structure and metric names;
#   - every dashboard query and the alert rules parsed by promtool;
#   - `kubectl kustomize` of both folders, where kubectl is installed.
# Tools come from PyPI into a virtual environment kept between runs. promtool is
# Debian's `prometheus` package (.ci/run installs it before calling this).
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSIONS="1.29.0 1.30.0 1.31.0 1.32.0 1.33.0 1.34.0 1.35.0 1.36.0 1.37.0"
VENV="${WFE_DEPLOY_CHECK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/workflow-engine/deploy-check}"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# kubernetes-validate brings PyYAML and jsonschema, which check_kit.py uses too. Pinned:
# its bundled schemas are what the versions above are checked against.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check 'kubernetes-validate==1.37.0'
PY="$VENV/bin/python"

# Every step runs, so one run reports every problem; the script fails if any step did.
failed=()
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

kit() {
  "$PY" deploy/check_kit.py
}

schemas() {
  local core version
  mapfile -t core < <("$PY" deploy/check_kit.py --list-core)
  [ "${#core[@]}" -gt 0 ] || return 1
  for version in $K8S_VERSIONS; do
    "$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "${core[@]}" || return 1
  done
  echo "${#core[@]} manifests valid for Kubernetes ${K8S_VERSIONS// /, }"
}

promql() {
  if ! command -v promtool >/dev/null; then
    echo "promtool not found: apt-get install prometheus (Debian), or run .ci/run" >&2
    return 1
  fi
  "$PY" deploy/check_kit.py --dashboard-rules "$tmp/dashboard-queries.yml" &&
    promtool check rules "$tmp/dashboard-queries.yml" &&
    promtool check rules deploy/alerts.yml
}

build() {
  local dir
  if ! command -v kubectl >/dev/null; then
    echo "kubectl not installed: the kustomizations were checked by listing (kit checks)"
    return 0
  fi
  for dir in deploy/kubernetes deploy/kubernetes/monitoring; do
    kubectl kustomize "$dir" >"$tmp/built.yaml" || return 1
    echo "$dir: $(grep -c '^kind:' "$tmp/built.yaml") resources"
  done
}

step() {
  echo "== $1"
  "$2" || failed+=("$1")
}

step "kit checks (deploy/check_kit.py)" kit
step "Kubernetes API schemas (kubernetes-validate --strict)" schemas
step "PromQL of the dashboard and the alerts (promtool)" promql
step "kustomize build (kubectl kustomize)" build

if [ "${#failed[@]}" -gt 0 ]; then
  printf 'deploy/check.sh: FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "deploy/check.sh: the deployment kit is valid"
