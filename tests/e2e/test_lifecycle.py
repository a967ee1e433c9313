"""Process lifecycle: the stdio server speaks only JSON-RPC on stdout and exits when
its stdin closes; the HTTP server stops promptly on SIGTERM, also while clients
hold long-lived streams open."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from _e2e import TOOL_NAMES, HttpServer, server_binary, server_env, start_http_server

# Generous next to the few milliseconds a clean shutdown takes here.
STOP_BUDGET = 3.0
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def test_stdio_speaks_only_jsonrpc_and_exits_when_stdin_closes():
    messages = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "get_node_status", "arguments": {"only_problems": True}},
        },
    ]
    stdin = "".join(json.dumps(m) + "\n" for m in messages)
    # communicate() closes stdin after writing: the server must answer, then exit by itself.
    proc = subprocess.run(
        [str(server_binary()), "serve", "--sandbox"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=20,
        env=server_env(),
    )
    assert proc.returncode == 0, proc.stderr
    replies = [json.loads(line) for line in proc.stdout.splitlines()]  # every stdout line is JSON
    assert all(r.get("jsonrpc") == "2.0" for r in replies)
    by_id = {r["id"]: r for r in replies if "id" in r}
    assert by_id[1]["result"]["serverInfo"]["name"] == "eks-ops-mcp"
    assert {t["name"] for t in by_id[2]["result"]["tools"]} >= TOOL_NAMES
    nodes = by_id[3]["result"]["structuredContent"]["nodes"]
    assert "ip-10-0-2-22.eu-west-1.compute.internal" in {n["name"] for n in nodes}
    # Logs go to stderr, never stdout.
    assert "INFO" in proc.stderr


@pytest.fixture
def own_server(request) -> Iterator[HttpServer]:
    server = start_http_server()
    request.addfinalizer(server.stop)
    yield server


def sigterm_and_wait(server: HttpServer) -> int | None:
    """SIGTERM the server; its exit code, or None if it is still running after STOP_BUDGET."""
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    try:
        return server.proc.wait(timeout=STOP_BUDGET)
    except subprocess.TimeoutExpired:
        return None


@contextmanager
def open_stream(client: httpx.Client, method: str, path: str, **kwargs) -> Iterator[httpx.Response]:
    with client.stream(method, path, **kwargs) as resp:
        assert resp.status_code == 200
        yield resp


def test_http_server_stops_on_sigterm(own_server):
    assert sigterm_and_wait(own_server) == 0


def test_http_server_stops_on_sigterm_with_open_streamable_http_stream(own_server):
    with httpx.Client(base_url=own_server.base_url, timeout=10.0) as client:
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            },
        }
        r = client.post("/mcp", json=init, headers=MCP_HEADERS)
        session = {"Mcp-Session-Id": r.headers["mcp-session-id"]}
        client.post(
            "/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers={**MCP_HEADERS, **session}
        )
        # The standalone server-to-client stream (GET /mcp) stays open...
        with open_stream(client, "GET", "/mcp", headers={"Accept": "text/event-stream", **session}):
            # ... and must not keep the server from stopping.
            assert sigterm_and_wait(own_server) == 0


def test_http_server_stops_on_sigterm_with_open_legacy_sse_stream(own_server):
    with httpx.Client(base_url=own_server.base_url, timeout=10.0) as client:
        with open_stream(client, "GET", "/sse") as resp:
            lines = resp.iter_lines()
            assert next(lines) == "event: endpoint"
            code = sigterm_and_wait(own_server)
            assert code == 0, f"server still running {STOP_BUDGET}s after SIGTERM with a legacy SSE stream open"
