#!/usr/bin/env bash
# Browser tests of the workflow builder page (GET /) in a real headless Chromium.
# Installs what is missing (Debian's chromium and sqlite3 through apt, playwright-core
# through `npm ci`), builds the engine binary if needed, then runs `node --test`.
#   tests/browser/run.sh                 # from anywhere
#   tests/browser/run.sh --screenshots   # also regenerate docs/screenshots/*.png
# Env: WFE_BINARY (default the debug build under CARGO_TARGET_DIR or target/),
# CHROMIUM (default /usr/bin/chromium).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

need_apt=()
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || need_apt+=(chromium)
command -v sqlite3 >/dev/null || need_apt+=(sqlite3)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  echo "run.sh: installing ${need_apt[*]} with apt-get" >&2
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
command -v node >/dev/null || { echo "run.sh: node (>= 20) is required" >&2; exit 1; }

if [ ! -d "$here/node_modules/playwright-core" ] || [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ -z "${WFE_BINARY:-}" ]; then
  (cd "$root" && cargo build --quiet --bin workflow-engine)
  target="${CARGO_TARGET_DIR:-$root/target}"
  case "$target" in /*) ;; *) target="$root/$target" ;; esac
  export WFE_BINARY="$target/debug/workflow-engine"
fi

cd "$here"
node --test --test-concurrency=1 builder.test.mjs operations.test.mjs crm.test.mjs journeys.test.mjs operators.test.mjs experiments.test.mjs contact.test.mjs
if [ "${1:-}" = "--screenshots" ]; then
  node screenshots.mjs
fi
