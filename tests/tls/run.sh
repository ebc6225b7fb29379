#!/usr/bin/env bash
# The engine against a Kafka broker that speaks TLS, and SASL (SCRAM-SHA-512) over TLS:
# tansu, with a throw-away CA and a server certificate for 127.0.0.1 made here with
# openssl. Runs the external-broker suites (README, tier 5) with the engine's
# kafka.properties and the tests' own clients set for the broker:
#   tests/tls/run.sh              # both passes: tls, then sasl_ssl
#   tests/tls/run.sh tls          # TLS only (server authentication, memory storage)
#   tests/tls/run.sh sasl_ssl     # SCRAM-SHA-512 over TLS (SQLite storage, which keeps users)
#   tests/tls/run.sh plain        # the same tansu without TLS: the control
# Env: TANSU (default: tansu on PATH, else /opt/tansu/bin/tansu), WFE_TLS_PORT (default
# 19093), WFE_TLS_TESTS (default "--test runtime --test cluster --test mailbox").
#
# tansu 0.6.0 as published cannot do this: its --cert and --key are mutually exclusive,
# and the broker builds a TLS acceptor it never uses, so the listener stays plain TCP.
# docs/deployment.md ("Testing against a TLS (and SASL) broker") says how to build a
# tansu that serves TLS. This script checks with `openssl s_client` that the port it talks to
# completes a TLS handshake with the test CA before running anything.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
passes=("${@:-tls sasl_ssl}")
read -r -a passes <<<"${passes[*]}"
port="${WFE_TLS_PORT:-19093}"
tests="${WFE_TLS_TESTS:---test runtime --test cluster --test mailbox}"
tansu="${TANSU:-$(command -v tansu || echo /opt/tansu/bin/tansu)}"
[ -x "$tansu" ] || { echo "run.sh: no tansu at $tansu (set TANSU)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "run.sh: openssl is required" >&2; exit 1; }

work="$(mktemp -d -t wfe-tls.XXXXXX)"
broker_pid=""
stop_broker() {
  if [ -n "$broker_pid" ]; then
    kill "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
    broker_pid=""
  fi
}
trap 'stop_broker; rm -rf "$work"' EXIT

# --- A CA for this run and a server certificate for 127.0.0.1 / localhost -------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj "/CN=workflow-engine tls test ca" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
  "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$work/server.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
  -CAcreateserial -days 1 -extfile "$work/server.ext" -out "$work/server.pem" 2>/dev/null

# start_broker NAME STORAGE [tansu options...]: starts tansu on the port, in $work (a
# sqlite:// storage is a file there), logging to $work/NAME.log.
start_broker() {
  local name="$1" storage="$2"
  shift 2
  (cd "$work" && exec "$tansu" broker --silent \
    --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "$storage" "$@" >"$work/$name.log" 2>&1) &
  broker_pid=$!
}

# wait_for CHECK...: runs CHECK until it succeeds, for up to 30 s.
wait_for() {
  for _ in $(seq 1 60); do
    if ! kill -0 "$broker_pid" 2>/dev/null; then
      echo "run.sh: tansu exited:" >&2; tail -20 "$work"/*.log >&2; exit 1
    fi
    "$@" && return 0
    sleep 0.5
  done
  echo "run.sh: the broker on 127.0.0.1:$port did not come up as expected" >&2
  tail -20 "$work"/*.log >&2
  exit 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }
# A TLS handshake that verifies the server certificate against the test CA and the IP.
speaks_tls() {
  openssl s_client -connect "127.0.0.1:$port" -CAfile "$work/ca.pem" -verify_ip 127.0.0.1 \
    -verify_return_error </dev/null >/dev/null 2>&1
}

run_suites() {
  local properties="$1"
  echo "== cargo test $tests against tansu on 127.0.0.1:$port ($(sed -E 's/(sasl.password=)[^;]*/\1***/' <<<"$properties"))"
  (cd "$root" && WFE_TEST_KAFKA_BROKERS="127.0.0.1:$port" WFE_TEST_KAFKA_PROPERTIES="$properties" \
    cargo test --no-fail-fast $tests)
}

# engine_fails NAME PATTERN [VAR=VALUE...]: `workflow-engine serve` against the broker with
# these settings must stop at start-up with an error line matching PATTERN (grep -Ei).
engine_fails() {
  local name="$1" pattern="$2"
  shift 2
  if [ -z "${binary:-}" ]; then
    (cd "$root" && cargo build --quiet --bin workflow-engine)
    local target="${CARGO_TARGET_DIR:-$root/target}"
    case "$target" in /*) ;; *) target="$root/$target" ;; esac
    binary="$target/debug/workflow-engine"
  fi
  local status=0 error
  (cd "$work" && env -u RUST_LOG NO_COLOR=1 WFE__DATABASE__URL="sqlite://$work/$name.db" \
    WFE__HTTP__BIND=127.0.0.1:0 WFE__KAFKA__BROKERS="127.0.0.1:$port" \
    WFE__KAFKA__CONNECT_TIMEOUT_MS=5000 "$@" \
    timeout 60 "$binary" serve >"$work/$name.out" 2>"$work/$name.err") || status=$?
  error="$(grep '^error: ' "$work/$name.err" || true)"
  if [ "$status" -eq 0 ] || [ "$status" -eq 124 ] || ! grep -Eqi "$pattern" <<<"$error"; then
    echo "run.sh: $name: expected start-up to fail matching '$pattern', got status $status:" >&2
    tail -20 "$work/$name.err" >&2
    exit 1
  fi
  echo "$name: $error"
}

plain_pass() {
  echo "== plain: the same tansu without TLS (the control: what fails here is not TLS)"
  start_broker plain memory://tansu/
  wait_for port_open
  run_suites ""
  stop_broker
}

tls_pass() {
  echo "== tls: tansu with a TLS listener (server authentication), memory storage"
  start_broker tls memory://tansu/ --cert "$work/server.pem" --key "$work/server.key"
  wait_for speaks_tls
  # The port speaks only TLS: a plaintext client gets no answer.
  engine_fails plaintext-client "127.0.0.1:$port unreachable"
  run_suites "security.protocol=ssl;ssl.ca.location=$work/ca.pem"
  stop_broker
}

sasl_pass() {
  echo "== sasl_ssl: tansu with TLS and SASL authentication (SCRAM-SHA-512), SQLite storage"
  local password
  password="$(openssl rand -hex 16)"
  # tansu keeps SCRAM credentials in its storage and creates them through the Kafka API,
  # which an authenticating broker refuses before a login: a plain broker on the same
  # SQLite file creates the user first.
  start_broker users "sqlite://tansu.db"
  wait_for port_open
  "$tansu" user create --broker "tcp://127.0.0.1:$port" --mechanism scram512 engine "$password" \
    >"$work/user.log" 2>&1 || { cat "$work/user.log" >&2; exit 1; }
  stop_broker
  start_broker sasl_ssl "sqlite://tansu.db" --cert "$work/server.pem" --key "$work/server.key" --authentication
  wait_for speaks_tls
  local sasl=(WFE__KAFKA__PROPERTIES__SECURITY__PROTOCOL=sasl_ssl
    WFE__KAFKA__PROPERTIES__SSL__CA__LOCATION="$work/ca.pem"
    WFE__KAFKA__PROPERTIES__SASL__MECHANISMS=SCRAM-SHA-512 WFE__KAFKA__PROPERTIES__SASL__USERNAME=engine)
  # The broker checks the password, and the engine says so when it is wrong; TLS without
  # a login gets nowhere either.
  engine_fails wrong-password "sasl authentication (error|failed)" "${sasl[@]}" \
    WFE__KAFKA__PROPERTIES__SASL__PASSWORD=not-the-password
  engine_fails no-login "127.0.0.1:$port unreachable" \
    WFE__KAFKA__PROPERTIES__SECURITY__PROTOCOL=ssl WFE__KAFKA__PROPERTIES__SSL__CA__LOCATION="$work/ca.pem"
  run_suites "security.protocol=sasl_ssl;ssl.ca.location=$work/ca.pem;sasl.mechanisms=SCRAM-SHA-512;sasl.username=engine;sasl.password=$password"
  stop_broker
}

for pass in "${passes[@]}"; do
  case "$pass" in
    plain) plain_pass ;;
    tls) tls_pass ;;
    sasl_ssl) sasl_pass ;;
    *) echo "run.sh: unknown pass $pass (plain, tls, sasl_ssl)" >&2; exit 2 ;;
  esac
done
echo "== tls/run.sh: ${passes[*]} passed"
