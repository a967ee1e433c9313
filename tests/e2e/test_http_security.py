"""HTTP listener security, checked with plain httpx requests: bearer token,
Origin and Host (DNS rebinding) validation on every endpoint, and /healthz."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from _e2e import HttpServer, server_binary, server_env, start_http_server

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "e2e-httpx", "version": "0"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}

# (method, path, json body) of every endpoint the listener serves.
ENDPOINTS: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "mcp": ("POST", "/mcp", INIT),
    "sse": ("GET", "/sse", None),
    "message": (
        "POST",
        "/message?sessionId=0123456789abcdef",
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
    ),
    "healthz": ("GET", "/healthz", None),
}


@contextmanager
def request(server: HttpServer, endpoint: str, headers: dict[str, str] | None = None) -> Iterator[httpx.Response]:
    """Send one request to `endpoint`; the body is read unless it is an event stream
    (which stays open, and is closed when the block exits)."""
    method, path, body = ENDPOINTS[endpoint]
    with httpx.Client(base_url=server.base_url, timeout=10.0) as client:
        with client.stream(method, path, json=body, headers={**MCP_HEADERS, **(headers or {})}) as resp:
            if not resp.headers.get("content-type", "").startswith("text/event-stream"):
                resp.read()
            yield resp


def assert_jsonrpc_denial(resp: httpx.Response, status: int, *fragments: str) -> None:
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {resp.text}"
    body = resp.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None
    for fragment in fragments:
        assert fragment in body["error"]["message"], body


def assert_allowed(resp: httpx.Response, endpoint: str) -> None:
    """The request got past the guard and was served by the endpoint itself."""
    if endpoint == "message":
        # Past the guard, an unknown session is the message endpoint's own 404.
        assert resp.status_code == 404, resp.text
        assert "session" in resp.text
        return
    assert resp.status_code == 200, f"{endpoint}: {resp.status_code} {resp.text if endpoint != 'sse' else ''}"
    if endpoint == "mcp":
        assert resp.headers.get("mcp-session-id")
    if endpoint == "sse":
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = resp.iter_lines()
        assert next(lines) == "event: endpoint"
        assert next(lines).startswith("data: /message?sessionId=")
    if endpoint == "healthz":
        assert resp.text == "ok"


# --------------------------------------------------------------------------- /healthz


def test_healthz_answers(http_server):
    r = httpx.get(http_server.base_url + "/healthz", timeout=5)
    assert r.status_code == 200 and r.text == "ok"


def test_server_binds_loopback_only(http_server):
    assert http_server.base_url.startswith("http://127.0.0.1:")
    assert 0 < http_server.port < 65536


# --------------------------------------------------------------------------- bearer token


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_token_server_refuses_requests_without_token(auth_server, endpoint):
    with request(auth_server, endpoint) as resp:
        assert_jsonrpc_denial(resp, 401, "Bearer")
        assert resp.headers.get("www-authenticate", "").startswith("Bearer")


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer wrong-token-0123456789abcdef",
        "Bearer {token}x",
        "Bearer {token_prefix}",
        "Basic {token}",
        "{token}",
        "Bearer",
    ],
    ids=["wrong", "longer", "prefix", "basic_scheme", "no_scheme", "empty"],
)
@pytest.mark.parametrize("endpoint", ["mcp", "sse"])
def test_token_server_refuses_wrong_token(auth_server, endpoint, authorization):
    value = authorization.format(token=auth_server.token, token_prefix=auth_server.token[:-1])
    with request(auth_server, endpoint, {"Authorization": value}) as resp:
        assert_jsonrpc_denial(resp, 401)


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_token_server_accepts_the_token(auth_server, endpoint):
    with request(auth_server, endpoint, auth_server.auth_headers()) as resp:
        assert_allowed(resp, endpoint)


def test_token_from_file_is_enforced(auth_file_server):
    with request(auth_file_server, "mcp") as resp:
        assert_jsonrpc_denial(resp, 401, "Bearer")
    with request(auth_file_server, "mcp", {"Authorization": "Bearer e2e-token-0123456789abcdef"}) as resp:
        assert_jsonrpc_denial(resp, 401)
    with request(auth_file_server, "mcp", auth_file_server.auth_headers()) as resp:
        assert_allowed(resp, "mcp")


def test_token_does_not_bypass_origin_check(auth_server):
    headers = {**auth_server.auth_headers(), "Origin": "https://evil.example"}
    with request(auth_server, "mcp", headers) as resp:
        assert_jsonrpc_denial(resp, 403, "Origin")


@pytest.mark.parametrize(
    ("content", "expected"),
    [("short-token\n", "shorter than 16 characters"), (None, "cannot read --auth-token-file")],
    ids=["too_short", "missing_file"],
)
def test_bad_token_file_refuses_to_start(tmp_path, content, expected):
    token_file = tmp_path / "token"
    if content is not None:
        token_file.write_text(content)
    proc = subprocess.run(
        [str(server_binary()), "serve", "--sandbox", "--http", "127.0.0.1:0", "--auth-token-file", str(token_file)],
        capture_output=True,
        text=True,
        timeout=20,
        env=server_env(),
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode != 0
    assert expected in proc.stderr
    assert "listening on" not in proc.stderr


def test_short_token_from_env_refuses_to_start():
    try:
        server = start_http_server(token="short", env=server_env(EKS_OPS_MCP_AUTH_TOKEN="short"))
    except RuntimeError as refused:
        assert "16" in str(refused)
        return
    try:
        raise AssertionError(f"server started on {server.base_url} with a 5-character token")
    finally:
        server.stop()


# --------------------------------------------------------------------------- Origin


BAD_ORIGINS = [
    "https://evil.example",
    "http://evil.example:8080",
    "null",
    "http://localhost.evil.example",
    "http://127.0.0.1.evil.example",
    "https://console.example.com",  # allowed only where --allowed-origin names it
]


@pytest.mark.parametrize("origin", BAD_ORIGINS)
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_foreign_origin_is_refused(http_server, endpoint, origin):
    with request(http_server, endpoint, {"Origin": origin}) as resp:
        assert_jsonrpc_denial(resp, 403, "Origin", "--allowed-origin")


@pytest.mark.parametrize(
    "origin", ["http://localhost:3000", "http://127.0.0.1:{port}", "http://[::1]:8080", "https://localhost"]
)
@pytest.mark.parametrize("endpoint", ["mcp", "sse", "healthz"])
def test_loopback_origin_is_accepted(http_server, endpoint, origin):
    with request(http_server, endpoint, {"Origin": origin.format(port=http_server.port)}) as resp:
        assert_allowed(resp, endpoint)


def test_allowed_origin_flag(allowlist_server):
    with request(allowlist_server, "mcp", {"Origin": "https://console.example.com"}) as resp:
        assert_allowed(resp, "mcp")
    with request(allowlist_server, "mcp", {"Origin": "https://evil.example"}) as resp:
        assert_jsonrpc_denial(resp, 403, "Origin")


# --------------------------------------------------------------------------- Host (DNS rebinding)


BAD_HOSTS = [
    "evil.example",
    "evil.example:{port}",
    "localhost.evil.example:{port}",
    "127.0.0.1.nip.io:{port}",
    "mcp.internal.example",
]


@pytest.mark.parametrize("host", BAD_HOSTS)
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_foreign_host_is_refused(http_server, endpoint, host):
    with request(http_server, endpoint, {"Host": host.format(port=http_server.port)}) as resp:
        assert_jsonrpc_denial(resp, 403, "Host", "DNS rebinding")


@pytest.mark.parametrize(
    "host", ["localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}", "localhost", "LOCALHOST:{port}"]
)
@pytest.mark.parametrize("endpoint", ["mcp", "healthz"])
def test_loopback_host_is_accepted(http_server, endpoint, host):
    with request(http_server, endpoint, {"Host": host.format(port=http_server.port)}) as resp:
        assert_allowed(resp, endpoint)


def test_allowed_host_flag(allowlist_server):
    with request(allowlist_server, "mcp", {"Host": "mcp.internal.example"}) as resp:
        assert_allowed(resp, "mcp")
    with request(allowlist_server, "mcp", {"Host": f"mcp.internal.example:{allowlist_server.port}"}) as resp:
        assert_allowed(resp, "mcp")
    with request(allowlist_server, "mcp", {"Host": "evil.example"}) as resp:
        assert_jsonrpc_denial(resp, 403, "Host")
