#!/usr/bin/env bash
# A real Prometheus on 127.0.0.1 with a week of deterministic, backfilled history, for the
# integration tests of the Prometheus client (tests/it/prometheus.rs).
#
# Usage: scripts/services/prometheus.sh start|stop|status
#   start   idempotent: installs Debian's `prometheus` if prometheus/promtool are missing,
#           generates 7 days of 5-minute OpenMetrics history ending now (rounded down to
#           5 minutes), backfills it with `promtool tsdb create-blocks-from openmetrics`,
#           starts Prometheus on 127.0.0.1:19090 (or a free loopback port), waits for
#           /-/ready and prints `EKS_OPS_MCP_TEST_PROMETHEUS_URL=http://127.0.0.1:PORT` as
#           its last line on stdout. A running instance is reused when its history ended
#           less than an hour ago; otherwise it is replaced with fresh history.
#   stop    stops the instance started here (pid file); idempotent.
#   status  prints the URL and exits 0 when running, exits 1 otherwise.
# Env: EKS_OPS_MCP_SERVICES_DIR   state folder (default $HOME/.cache/eks-ops-mcp/services);
#                                 this script uses its `prometheus/` subfolder.
#
# The series (t = sample time in unix seconds, every 300 s from END-7d to END inclusive,
# 2017 samples each; END = the start time rounded down to a multiple of 300;
# day(t) = sin(2π·(t mod 86400)/86400), week(t) = sin(2π·(t mod 604800)/604800)):
#   http_requests_per_second{service="checkout"}  = 100 + 40·day(t) + 15·week(t)  (3 decimals)
#   http_requests_per_second{service="cart"}      =  50 + 20·day(t) +  5·week(t)  (3 decimals)
#   container_memory_working_set_bytes{namespace="shop",container="payment-api",
#     pod="payment-api-7c9d8f6b5-x2k4q"} = round(268435456 + 512·(t − (END−604800))
#                                                 + 4194304·day(t))     (climbs ~295 MiB)
#   container_memory_working_set_bytes{namespace="shop",container="payment-api",
#     pod="payment-api-7c9d8f6b5-m8n2z"} = 314572800                     (flat)
#   eks_ops_mcp_backfill_end_seconds = END                                (marker for tests)
# tests/it/prometheus.rs computes the same formulas; keep both in step.
set -euo pipefail

base="${EKS_OPS_MCP_SERVICES_DIR:-$HOME/.cache/eks-ops-mcp/services}"
state="$base/prometheus"
pidfile="$state/prometheus.pid"
portfile="$state/port"
endfile="$state/end"
logfile="$state/prometheus.log"
preferred_port=19090

log() { printf '[prometheus] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

running_pid() {
  local pid
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  # Guard against pid reuse: it must be a prometheus using our storage.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--storage.tsdb.path=$state/data" || return 1
  echo "$pid"
}

ready() {
  curl -fsS --max-time 2 "http://127.0.0.1:$1/-/ready" >/dev/null 2>&1
}

port_free() {
  python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

ensure_installed() {
  if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    return
  fi
  log "installing Debian's prometheus package"
  local added_policy=0
  # Keep the package's own service from starting (on 0.0.0.0:9090) during install.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod 755 /usr/sbin/policy-rc.d
    added_policy=1
  fi
  as_root apt-get update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >&2
  if [ "$added_policy" = 1 ]; then as_root rm -f /usr/sbin/policy-rc.d; fi
}

generate() { # $1 = END (unix seconds, multiple of 300), $2 = output file
  python3 - "$1" "$2" <<'EOF'
import math, sys

end = int(sys.argv[1])
out = sys.argv[2]
step, week = 300, 604800
start = end - week
times = range(start, end + 1, step)

def day(t):
    return math.sin(2 * math.pi * (t % 86400) / 86400)

def wk(t):
    return math.sin(2 * math.pi * (t % week) / week)

with open(out, "w") as f:
    f.write("# HELP http_requests_per_second Requests per second (synthetic).\n")
    f.write("# TYPE http_requests_per_second gauge\n")
    for svc, b, d, w in (("checkout", 100, 40, 15), ("cart", 50, 20, 5)):
        for t in times:
            v = b + d * day(t) + w * wk(t)
            f.write(f'http_requests_per_second{{service="{svc}"}} {v:.3f} {t}\n')
    f.write("# HELP container_memory_working_set_bytes Working set (synthetic).\n")
    f.write("# TYPE container_memory_working_set_bytes gauge\n")
    labels = 'container="payment-api",namespace="shop",pod="payment-api-7c9d8f6b5-{}"'
    for t in times:
        v = round(268435456 + 512 * (t - start) + 4194304 * day(t))
        f.write(f"container_memory_working_set_bytes{{{labels.format('x2k4q')}}} {v} {t}\n")
    for t in times:
        f.write(f"container_memory_working_set_bytes{{{labels.format('m8n2z')}}} 314572800 {t}\n")
    f.write("# HELP eks_ops_mcp_backfill_end_seconds End of the backfilled history.\n")
    f.write("# TYPE eks_ops_mcp_backfill_end_seconds gauge\n")
    for t in times:
        f.write(f"eks_ops_mcp_backfill_end_seconds {end} {t}\n")
    f.write("# EOF\n")
EOF
}

stop() {
  local pid
  if pid=$(running_pid); then
    log "stopping pid $pid"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "pid $pid did not stop: killing it"
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

print_url() {
  echo "EKS_OPS_MCP_TEST_PROMETHEUS_URL=http://127.0.0.1:$(cat "$portfile")"
}

start() {
  local pid port end now
  now=$(date +%s)
  if pid=$(running_pid) && port=$(cat "$portfile" 2>/dev/null) && ready "$port"; then
    end=$(cat "$endfile" 2>/dev/null || echo 0)
    if [ $((now - end)) -lt 3600 ]; then
      log "already running (pid $pid, history ends $(date -u -d "@$end" +%FT%TZ))"
      print_url
      return
    fi
    log "running instance has history older than an hour: restarting with fresh history"
  fi
  stop
  ensure_installed
  log "$(prometheus --version 2>&1 | head -1)"

  mkdir -p "$state"
  rm -rf "$state/data" "$state/history.om"
  end=$(( now / 300 * 300 ))
  generate "$end" "$state/history.om"
  promtool tsdb create-blocks-from openmetrics "$state/history.om" "$state/data" >"$state/backfill.log" 2>&1 || {
    cat "$state/backfill.log" >&2
    log "backfill failed"
    exit 1
  }
  echo "$end" >"$endfile"

  cat >"$state/prometheus.yml" <<'EOF'
# No scrape targets: the tests query the backfilled history only.
global:
  evaluation_interval: 1m
scrape_configs: []
EOF

  if port_free "$preferred_port"; then port=$preferred_port; else port=$(free_port); fi
  echo "$port" >"$portfile"
  nohup prometheus \
    --config.file="$state/prometheus.yml" \
    --storage.tsdb.path="$state/data" \
    --storage.tsdb.retention.time=30d \
    --web.listen-address="127.0.0.1:$port" \
    --log.level=warn \
    </dev/null >"$logfile" 2>&1 &
  pid=$!
  echo "$pid" >"$pidfile"
  for _ in $(seq 1 300); do
    if ready "$port"; then
      log "ready on 127.0.0.1:$port (pid $pid), history $(date -u -d "@$((end - 604800))" +%FT%TZ) .. $(date -u -d "@$end" +%FT%TZ)"
      print_url
      return
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -20 "$logfile" >&2
      log "prometheus exited"
      rm -f "$pidfile"
      exit 1
    fi
    sleep 0.2
  done
  tail -20 "$logfile" >&2
  log "not ready after 60 s"
  stop
  exit 1
}

status() {
  local pid port
  if pid=$(running_pid) && port=$(cat "$portfile" 2>/dev/null) && ready "$port"; then
    print_url
  else
    echo "not running" >&2
    exit 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
