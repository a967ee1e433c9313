#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need (kubectl,
# a Python venv with the official MCP SDK, Node 22 + the MCP conformance suite), then
# starts the servers the tests talk to (a real Prometheus with backfilled history, LocalStack
# for CloudWatch), runs the Rust unit and integration tests, the Python SDK end-to-end tests
# over stdio / Streamable HTTP / legacy SSE, and the conformance suite, and stops the servers.
#
# Usage: scripts/test.sh            (from the repository root)
# Env:   CARGO_TARGET_DIR           reuse a build folder (CI keeps one outside the clone)
#        EKS_OPS_MCP_VENV           where the Python venv lives (default .venv)
#        EKS_OPS_MCP_SERVICES_DIR   state of the test servers (default ~/.cache/eks-ops-mcp/services)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

say() { printf '\n== %s\n' "$*"; }

say "prerequisites"
if ! command -v kubectl >/dev/null 2>&1; then
  echo "kubectl not found: installing Debian's kubernetes-client"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client >/dev/null
  fi
fi
kubectl version --client 2>/dev/null | head -1 || true

venv="${EKS_OPS_MCP_VENV:-$root/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
req="$root/tests/e2e/requirements.txt"
stamp="$venv/.requirements.sha"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
  echo "$want" > "$stamp"
fi

say "services the tests use (on 127.0.0.1)"
export EKS_OPS_MCP_REQUIRE_SERVICES=1
started=()
stop_services() {
  for svc in "${started[@]}"; do
    "$root/scripts/services/$svc.sh" stop >/dev/null 2>&1 || true
  done
}
trap stop_services EXIT
for svc in prometheus localstack; do
  if [ -x "$root/scripts/services/$svc.sh" ]; then
    line=$("$root/scripts/services/$svc.sh" start | tail -n1)
    export "${line?}"
    started+=("$svc")
    echo "$line"
  fi
done

say "cargo build"
cargo build --locked --bin eks-ops-mcp
target="${CARGO_TARGET_DIR:-$root/target}"
export EKS_OPS_MCP_BIN="$target/debug/eks-ops-mcp"

say "cargo test (unit + integration, against the sandbox cluster)"
cargo test --locked

say "end-to-end tests with the official Python MCP SDK"
"$venv/bin/python" -m pytest tests/e2e -q

say "MCP conformance suite (Streamable HTTP)"
bash tests/conformance/run.sh
