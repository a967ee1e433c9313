#!/usr/bin/env bash
# Runs the official MCP conformance suite (@modelcontextprotocol/conformance,
# pinned in package.json / package-lock.json) against
# `eks-ops-mcp serve --sandbox --http 127.0.0.1:0` and compares the outcome with
# expected-failures.txt. See README.md.
#
# Env:
#   EKS_OPS_MCP_BIN               server binary (default: $HOME/.cache/eks-ops-mcp/target/debug/eks-ops-mcp)
#   CONFORMANCE_SCENARIOS         space-separated subset of scenarios to run (default: every server scenario)
#   CONFORMANCE_SCENARIO_TIMEOUT  seconds one scenario may take (default 30)
#   CONFORMANCE_BUDGET            seconds all scenarios together may take (default 100)
#   CONFORMANCE_TOOLS_DIR         where Node 22 and the suite are installed (default: .tools/ beside this file)
#
# Last line of output: `N passed, M failed` (M = unexpected failures + unexpected
# passes). Exit status 0 iff M == 0.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOLS="${CONFORMANCE_TOOLS_DIR:-$HERE/.tools}"
NODE="$TOOLS/node_modules/node/bin/node"
CLI="$TOOLS/node_modules/@modelcontextprotocol/conformance/dist/index.js"
BIN="${EKS_OPS_MCP_BIN:-$HOME/.cache/eks-ops-mcp/target/debug/eks-ops-mcp}"
EXPECTED="$HERE/expected-failures.txt"
SCENARIO_TIMEOUT="${CONFORMANCE_SCENARIO_TIMEOUT:-30}"
BUDGET="${CONFORMANCE_BUDGET:-100}"
WORK="$TOOLS/last-run"
SERVER_PID=""

log() { echo "conformance: $*"; }
die() {
  echo "conformance: ERROR: $*" >&2
  echo "0 passed, 1 failed"
  exit 1
}

stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null
    for _ in $(seq 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
  SERVER_PID=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM

# ---- 1. pinned tools (Node 22 + the suite) in .tools/, never committed ------------
install_tools() {
  mkdir -p "$TOOLS"
  [ -f "$TOOLS/.gitignore" ] ||
    printf '# Local install made by tests/conformance/run.sh; nothing here is committed.\n*\n' >"$TOOLS/.gitignore"
  local want pinned_node
  want="$(cat "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -d' ' -f1)"
  pinned_node="v$(sed -n 's/^ *"node": *"\([0-9.]*\)".*/\1/p' "$HERE/package.json" | head -1)"
  if [ "$(cat "$TOOLS/.installed" 2>/dev/null)" = "$want" ] && [ -x "$NODE" ] && [ -f "$CLI" ]; then
    return 0 # already installed: no network, no npm
  fi
  command -v npm >/dev/null || die "npm not found on PATH (needed once to install the pinned tools)"
  log "installing pinned tools into $TOOLS (npm ci) ..."
  rm -f "$TOOLS/.installed"
  cp "$HERE/package.json" "$HERE/package-lock.json" "$TOOLS/"
  if ! (cd "$TOOLS" && npm ci --no-audit --no-fund --loglevel=error) >"$TOOLS/npm-install.log" 2>&1; then
    tail -n 30 "$TOOLS/npm-install.log" >&2
    die "npm ci failed (log: $TOOLS/npm-install.log)"
  fi
  local got
  got="$("$NODE" --version 2>/dev/null)"
  [ "$got" = "$pinned_node" ] || die "expected Node $pinned_node from npm package 'node', got '${got:-nothing}' ($NODE)"
  [ -f "$CLI" ] || die "conformance CLI missing after install: $CLI"
  echo "$want" >"$TOOLS/.installed"
}
install_tools
log "node $("$NODE" --version), @modelcontextprotocol/conformance $("$NODE" "$CLI" --version)"

# ---- 2. the server on a free loopback port -------------------------------------------
[ -x "$BIN" ] || die "server binary not found or not executable: $BIN (build it, or set EKS_OPS_MCP_BIN)"
rm -rf "$WORK"
mkdir -p "$WORK/results"
"$BIN" serve --sandbox --http 127.0.0.1:0 </dev/null >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
URL=""
for _ in $(seq 300); do # up to 30 s
  port="$(sed -n 's/.*eks-ops-mcp listening on http:\/\/127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$WORK/server.log" | head -1)"
  if [ -n "$port" ]; then
    URL="http://127.0.0.1:$port/mcp"
    break
  fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    tail -n 20 "$WORK/server.log" >&2
    die "server exited before listening"
  fi
  sleep 0.1
done
[ -n "$URL" ] || { tail -n 20 "$WORK/server.log" >&2; die "server did not print its listening address within 30 s"; }
log "server pid $SERVER_PID at $URL"

# ---- 3. scenarios ----------------------------------------------------------------------
mapfile -t ALL_SCENARIOS < <("$NODE" "$CLI" list --server | sed -n 's/^ *- \([^ ]*\).*/\1/p')
[ "${#ALL_SCENARIOS[@]}" -gt 0 ] || die "the suite listed no server scenarios"
export CONFORMANCE_ALL_SCENARIOS="${ALL_SCENARIOS[*]}"
if [ -n "${CONFORMANCE_SCENARIOS:-}" ]; then
  read -r -a SCENARIOS <<<"$CONFORMANCE_SCENARIOS"
else
  SCENARIOS=("${ALL_SCENARIOS[@]}")
fi
log "running ${#SCENARIOS[@]} scenarios (results: $WORK/results)"

start=$SECONDS
for s in "${SCENARIOS[@]}"; do
  d="$WORK/results/$s"
  mkdir -p "$d"
  if ((SECONDS - start >= BUDGET)); then
    echo "not run: time budget of ${BUDGET}s exhausted" >"$d/cli.log"
    echo "not run" >"$d/exit-code"
    continue
  fi
  timeout -k 5 "$SCENARIO_TIMEOUT" "$NODE" "$CLI" server --url "$URL" --scenario "$s" -o "$d" >"$d/cli.log" 2>&1
  echo $? >"$d/exit-code"
done
log "scenarios took $((SECONDS - start))s"
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  log "WARNING: the server died during the run; its log:"
  tail -n 20 "$WORK/server.log"
fi
stop_server

# ---- 4. compare with expected-failures.txt; prints the closing `N passed, M failed` ----
echo
"$NODE" "$HERE/evaluate.mjs" "$WORK/results" "$EXPECTED" "${SCENARIOS[@]}"
exit $?
