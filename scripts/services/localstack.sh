#!/usr/bin/env bash
# LocalStack (CloudWatch + STS only) in host mode, without Docker, for the CloudWatch
# integration tests. Listens on 127.0.0.1:4566 only and sends nothing off the machine.
#
# Usage: scripts/services/localstack.sh start|stop|status
#   start   installs LocalStack into a venv (once), starts it unless it already runs,
#           waits until CloudWatch answers, and prints as its last stdout line:
#             EKS_OPS_MCP_TEST_CLOUDWATCH_ENDPOINT=http://127.0.0.1:4566
#   stop    stops the instance this script started (by its pid file); idempotent.
#   status  exit 0 if it runs and answers, 1 otherwise.
# Env:   EKS_OPS_MCP_SERVICES_DIR   state folder (default $HOME/.cache/eks-ops-mcp/services);
#                                   everything lives under its localstack/ subfolder
#        EKS_OPS_MCP_PYTHON         the Python for the venv (default python3.11, else python3)
#        EKS_OPS_MCP_LOCALSTACK_WAIT_SECS  how long start waits for readiness (default 180)
set -euo pipefail

HOST=127.0.0.1
PORT=4566
URL="http://$HOST:$PORT"
LOCALSTACK_VERSION=4.13.1
# Pins that work together with localstack-core 4.13.1 in host mode (newer cryptography /
# pyOpenSSL / cbor2 releases break its runtime).
PIP_SPECS=(
  "localstack-core[runtime]==$LOCALSTACK_VERSION"
  "cryptography<44"
  "pyopenssl==24.2.1"
  "service_identity<24.3"
  "cbor2<5.7"
)

base="${EKS_OPS_MCP_SERVICES_DIR:-$HOME/.cache/eks-ops-mcp/services}"
dir="$base/localstack"
venv="$dir/venv"
pidfile="$dir/localstack.pid"
logfile="$dir/localstack.log"
wait_secs="${EKS_OPS_MCP_LOCALSTACK_WAIT_SECS:-180}"

log() { printf 'localstack: %s\n' "$*" >&2; }

# `curl` if present, else the venv's (or any) Python: prints the health JSON or fails.
health() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 3 --noproxy '*' "$URL/_localstack/health" 2>/dev/null
  else
    local py="$venv/bin/python"
    [ -x "$py" ] || py=python3
    "$py" - "$URL/_localstack/health" <<'EOF' 2>/dev/null
import sys, urllib.request
h = urllib.request.ProxyHandler({})
print(urllib.request.build_opener(h).open(sys.argv[1], timeout=3).read().decode())
EOF
  fi
}

# Ready when the health endpoint lists cloudwatch as available or running.
ready() {
  local body
  body=$(health) || return 1
  printf '%s' "$body" | grep -Eq '"cloudwatch": *"(available|running)"'
}

running_pid() {
  [ -f "$pidfile" ] || return 1
  local pid
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  # The pid may have been reused since: only a LocalStack runtime counts.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'localstack.runtime.main' || return 1
  printf '%s' "$pid"
}

install() {
  local want stamp="$venv/.localstack-specs"
  want="${PIP_SPECS[*]}"
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  local py="${EKS_OPS_MCP_PYTHON:-}"
  if [ -z "$py" ]; then
    if command -v python3.11 >/dev/null 2>&1; then py=python3.11; else py=python3; fi
  fi
  log "installing localstack-core $LOCALSTACK_VERSION into $venv (with $($py --version 2>&1))"
  local t0=$SECONDS
  rm -rf "$venv"
  mkdir -p "$dir"
  "$py" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "${PIP_SPECS[@]}" >&2
  printf '%s' "$want" >"$stamp"
  log "installed in $((SECONDS - t0)) s"
}

start() {
  mkdir -p "$dir"
  if running_pid >/dev/null && ready; then
    log "already running (pid $(cat "$pidfile")) on $URL"
    echo "EKS_OPS_MCP_TEST_CLOUDWATCH_ENDPOINT=$URL"
    return 0
  fi
  if ready; then
    # Something not started by this script (an earlier state folder, a manual run) already
    # serves CloudWatch on the port: use it rather than fail to bind.
    log "a LocalStack not started from $dir already answers on $URL: using it"
    echo "EKS_OPS_MCP_TEST_CLOUDWATCH_ENDPOINT=$URL"
    return 0
  fi
  if pid=$(running_pid); then
    log "pid $pid from $pidfile runs but does not answer: stopping it first"
    stop
  fi
  install

  local t0=$SECONDS
  log "starting on $URL (log: $logfile)"
  : >"$logfile"
  # Env:
  # - GATEWAY_SERVER=hypercorn: the default twisted server ignores the host of GATEWAY_LISTEN
  #   for IPv4 and binds 0.0.0.0; hypercorn binds exactly 127.0.0.1:4566.
  # - OVERRIDE_IN_DOCKER=0: on a machine with /.dockerenv LocalStack would think it runs in
  #   its own container (default bind 0.0.0.0, state under /var/lib/localstack, pinging the
  #   Docker bridge); DOCKER_BRIDGE_IP set so that it never probes one.
  # - DNS_ADDRESS=0: no DNS server (it would bind 0.0.0.0:53 and forward upstream).
  # - DISABLE_EVENTS=1: no analytics events; SKIP_SSL_CERT_DOWNLOAD=1: no certificate download
  #   (a self-signed one is made locally).
  # - API_ENDPOINT / ANALYTICS_API / OUTBOUND_HTTP(S)_PROXY point at a closed loopback port so
  #   that any remaining code path that would call home (service catalog, package
  #   downloads) fails locally.
  # - LOCALSTACK_HOST: generated URLs use 127.0.0.1, not localhost.localstack.cloud (which
  #   needs a public DNS lookup).
  # - FILESYSTEM_ROOT / LOCALSTACK_VOLUME_DIR: all its files stay under the state folder.
  (
    cd "$dir"
    exec env \
      GATEWAY_LISTEN="$HOST:$PORT" \
      GATEWAY_SERVER=hypercorn \
      OVERRIDE_IN_DOCKER=0 \
      DOCKER_BRIDGE_IP=127.0.0.1 \
      LOCALSTACK_HOST="$HOST:$PORT" \
      SERVICES=cloudwatch,sts \
      STRICT_SERVICE_LOADING=1 \
      EAGER_SERVICE_LOADING=1 \
      DNS_ADDRESS=0 \
      DISABLE_EVENTS=1 \
      SKIP_SSL_CERT_DOWNLOAD=1 \
      API_ENDPOINT="http://127.0.0.1:9/blocked" \
      ANALYTICS_API="http://127.0.0.1:9/blocked" \
      OUTBOUND_HTTP_PROXY="http://127.0.0.1:9" \
      OUTBOUND_HTTPS_PROXY="http://127.0.0.1:9" \
      PERSISTENCE=0 \
      FILESYSTEM_ROOT="$dir/filesystem" \
      LOCALSTACK_VOLUME_DIR="$dir/volume" \
      setsid "$venv/bin/python" -m localstack.runtime.main
  ) >>"$logfile" 2>&1 </dev/null &
  echo $! >"$pidfile"

  local deadline=$((SECONDS + wait_secs))
  while ! ready; do
    if ! running_pid >/dev/null; then
      log "exited during startup; last log lines:"
      tail -n 30 "$logfile" >&2 || true
      rm -f "$pidfile"
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "not ready after $wait_secs s; last log lines:"
      tail -n 30 "$logfile" >&2 || true
      stop
      return 1
    fi
    sleep 1
  done
  log "ready in $((SECONDS - t0)) s (pid $(cat "$pidfile"))"
  echo "EKS_OPS_MCP_TEST_CLOUDWATCH_ENDPOINT=$URL"
}

stop() {
  local pid
  if ! pid=$(running_pid); then
    rm -f "$pidfile"
    log "not running"
    return 0
  fi
  # setsid made it a process-group leader: signal the group (it and any children).
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  local i
  for i in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid ignored SIGTERM: sending SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  log "stopped (pid $pid)"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) running_pid >/dev/null && ready ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
