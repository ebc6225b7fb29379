#!/usr/bin/env bash
# The OpenAPI document as a client author meets it: fetched from a running engine
# (GET /api/v1/openapi.json on the embedded defaults), validated against the OpenAPI 3
# specification (openapi-spec-validator), and turned into a Python client
# (openapi-python-client) that must import. Both tools come from PyPI into a virtual
# environment under ~/.cache. Env: WFE_BINARY (default the debug build).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
if [ -z "${WFE_BINARY:-}" ]; then
  (cd "$root" && cargo build --quiet --bin workflow-engine)
  target="${CARGO_TARGET_DIR:-$root/target}"
  case "$target" in /*) ;; *) target="$root/$target" ;; esac
  WFE_BINARY="$target/debug/workflow-engine"
fi
venv="${XDG_CACHE_HOME:-$HOME/.cache}/workflow-engine-openapi-venv"
if [ ! -x "$venv/bin/openapi-python-client" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q openapi-spec-validator==0.7.2 openapi-python-client==0.28.1
fi
work="$(mktemp -d)"
trap 'kill "${engine:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
WFE__DATABASE__URL="sqlite://$work/openapi.db" WFE__HTTP__BIND=127.0.0.1:0 WFE__LOG__LEVEL=info \
  "$WFE_BINARY" serve > "$work/engine.log" 2>&1 &
engine=$!
base=""
for _ in $(seq 1 120); do
  base="$(grep -o 'listening on http://[^ ]*' "$work/engine.log" | head -1 | sed 's/listening on //')" || true
  [ -n "$base" ] && curl -sf "$base/healthz" >/dev/null && break
  sleep 0.5
done
[ -n "$base" ] || { echo "openapi: the engine did not start:" >&2; tail -20 "$work/engine.log" >&2; exit 1; }
curl -sf "$base/api/v1/openapi.json" > "$work/openapi.json"
"$venv/bin/openapi-spec-validator" "$work/openapi.json"
(cd "$work" && "$venv/bin/openapi-python-client" generate --path openapi.json --output-path client \
  > "$work/generate.log" 2>&1) || { cat "$work/generate.log" >&2; exit 1; }
# The generated package must import: every model and endpoint module it wrote.
(cd "$work/client" && "$venv/bin/python" -c '
import importlib, pkgutil, sys
import workflow_engine_client as pkg
names = [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
for name in names:
    importlib.import_module(name)
print(f"openapi: the document is valid; a generated Python client imports ({len(names)} modules)")
')
