"""The two HTTP transports at the wire level and with authentication:

* the official SDK clients (streamable_http_client, sse_client) against a
  token-protected server, with and without the token;
* Streamable HTTP session lifecycle (Mcp-Session-Id, DELETE) with raw httpx;
* the legacy 2024-11-05 HTTP+SSE transport with raw httpx, negotiating 2024-11-05.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp.shared.exceptions import MCPError

from _e2e import CART_POD, REQUEST_TIMEOUT, TOOL_NAMES, connect, result_text, validate_against

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def initialize_request(version: str, request_id: int = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "e2e-raw", "version": "0"}},
    }


# --------------------------------------------------------------------------- SDK clients with a token


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["streamable_http", "sse"])
async def test_sdk_session_with_token(auth_server, transport):
    async with connect(transport, http=auth_server) as c:
        with anyio.fail_after(REQUEST_TIMEOUT):
            listing = await c.session.list_tools()
            result = await c.session.call_tool("get_pod_status", {"namespace": "shop", "only_unhealthy": True})
        assert {t.name for t in listing.tools} >= TOOL_NAMES
        assert not result.is_error, result_text(result)
        schema = next(t.output_schema for t in listing.tools if t.name == "get_pod_status")
        validate_against(schema, result.structured_content)
        assert CART_POD in {p["name"] for p in result.structured_content["pods"]}


@pytest.mark.anyio
async def test_sdk_streamable_http_without_token_is_refused(auth_server):
    with pytest.raises(MCPError) as info:
        with anyio.fail_after(REQUEST_TIMEOUT):
            async with connect("streamable_http", http=auth_server, headers={}):
                pass  # pragma: no cover - initialize must fail
    assert "Bearer" in str(info.value)


@pytest.mark.anyio
async def test_sdk_sse_without_token_is_refused(auth_server):
    with pytest.raises(httpx2.HTTPStatusError) as info:
        with anyio.fail_after(REQUEST_TIMEOUT):
            async with connect("sse", http=auth_server, headers={}):
                pass  # pragma: no cover - connecting must fail
    assert info.value.response.status_code == 401


# --------------------------------------------------------------------------- Streamable HTTP, raw


def jsonrpc_messages(resp: httpx.Response) -> list[dict[str, Any]]:
    """JSON-RPC messages of a Streamable HTTP response (a JSON body or an SSE stream)."""
    ctype = resp.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        body = resp.json()
        return body if isinstance(body, list) else [body]
    assert ctype.startswith("text/event-stream"), ctype
    out = []
    for block in resp.text.split("\n\n"):
        data = "\n".join(line[5:].lstrip(" ") for line in block.splitlines() if line.startswith("data:"))
        if data.strip():
            out.append(json.loads(data))
    return out


def answer(resp: httpx.Response, request_id: int) -> dict[str, Any]:
    assert resp.status_code == 200, f"{resp.status_code}: {resp.text}"
    return next(m for m in jsonrpc_messages(resp) if m.get("id") == request_id)


@pytest.fixture
def mcp_client(http_server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=http_server.base_url, timeout=10.0, headers=MCP_HEADERS) as client:
        yield client


def open_raw_session(client: httpx.Client, version: str = "2025-06-18") -> str:
    resp = client.post("/mcp", json=initialize_request(version))
    init = answer(resp, 1)
    assert init["result"]["protocolVersion"] == version
    assert init["result"]["serverInfo"]["name"] == "eks-ops-mcp"
    session_id = resp.headers["mcp-session-id"]
    headers = {"Mcp-Session-Id": session_id, "MCP-Protocol-Version": version}
    r = client.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    assert r.status_code == 202, r.text
    return session_id


def test_streamable_http_session_lifecycle(mcp_client):
    session_id = open_raw_session(mcp_client)
    headers = {"Mcp-Session-Id": session_id, "MCP-Protocol-Version": "2025-06-18"}

    tools = answer(
        mcp_client.post("/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=headers), 2
    )
    assert {t["name"] for t in tools["result"]["tools"]} >= TOOL_NAMES

    call = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tools/call",
        "params": {"name": "get_rollout_history", "arguments": {"namespace": "shop", "name": "checkout"}},
    }
    result = answer(mcp_client.post("/mcp", json=call, headers=headers), 3)["result"]
    assert result["isError"] is False
    assert result["structuredContent"]["current_revision"] == 3

    # DELETE ends the session; the id is unknown afterwards.
    r = mcp_client.delete("/mcp", headers=headers)
    assert r.status_code in (200, 202, 204), r.text
    r = mcp_client.post("/mcp", json={"jsonrpc": "2.0", "id": 4, "method": "tools/list"}, headers=headers)
    assert r.status_code == 404, r.text


def test_streamable_http_sessions_are_independent(mcp_client):
    first, second = open_raw_session(mcp_client), open_raw_session(mcp_client)
    assert first != second
    mcp_client.delete("/mcp", headers={"Mcp-Session-Id": first})
    r = mcp_client.post(
        "/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers={"Mcp-Session-Id": second}
    )
    assert {t["name"] for t in answer(r, 2)["result"]["tools"]} >= TOOL_NAMES


def test_streamable_http_request_without_session_is_rejected(mcp_client):
    r = mcp_client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert r.status_code == 400, r.text


def test_streamable_http_unknown_session_is_not_found(mcp_client):
    r = mcp_client.post(
        "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers={"Mcp-Session-Id": "no-such-session"}
    )
    assert r.status_code == 404, r.text


# --------------------------------------------------------------------------- legacy HTTP+SSE, raw


class LegacySse:
    """One raw legacy SSE session: GET /sse, then POST /message?sessionId=…."""

    def __init__(self, client: httpx.Client, resp: httpx.Response) -> None:
        self.client = client
        self.resp = resp
        self.lines = resp.iter_lines()
        event, data = self.next_event()
        assert event == "endpoint", (event, data)
        assert data.startswith("/message?sessionId=")
        self.endpoint = data

    def next_event(self) -> tuple[str, str]:
        event, data = "message", []
        for line in self.lines:  # each read is bounded by the client's read timeout
            if line == "":
                if data:
                    return event, "\n".join(data)
                event = "message"
                continue
            if line.startswith(":"):
                continue  # keep-alive comment
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
        raise AssertionError("SSE stream ended")

    def post(self, message: dict[str, Any]) -> httpx.Response:
        return self.client.post(self.endpoint, json=message)

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        r = self.post(message)
        assert r.status_code == 202, f"{r.status_code}: {r.text}"
        deadline = time.monotonic() + REQUEST_TIMEOUT
        while time.monotonic() < deadline:
            event, data = self.next_event()
            if event == "message":
                msg = json.loads(data)
                if msg.get("id") == message["id"]:
                    return msg
        raise AssertionError(f"no answer to {message['method']}")


@pytest.fixture
def legacy(http_server) -> Iterator[LegacySse]:
    with httpx.Client(base_url=http_server.base_url, timeout=10.0) as client:
        with client.stream("GET", "/sse", headers={"Accept": "text/event-stream"}) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            yield LegacySse(client, resp)


def test_legacy_sse_speaks_2024_11_05(legacy):
    init = legacy.request(initialize_request("2024-11-05"))
    assert init["result"]["protocolVersion"] == "2024-11-05"
    assert init["result"]["serverInfo"]["name"] == "eks-ops-mcp"
    assert legacy.post({"jsonrpc": "2.0", "method": "notifications/initialized"}).status_code == 202

    tools = legacy.request({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})["result"]["tools"]
    assert {t["name"] for t in tools} >= TOOL_NAMES

    call = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tools/call",
        "params": {"name": "get_pod_logs", "arguments": {"namespace": "shop", "pod": CART_POD, "previous": True}},
    }
    result = legacy.request(call)["result"]
    assert result["isError"] is False
    text = json.dumps(result)
    assert "Sup3rS3cret" not in text and "AKIAIOSFODNN7EXAMPLE" not in text
    assert any(block["type"] == "text" and "previous instance" in block["text"] for block in result["content"])

    bad = {
        "jsonrpc": "2.0",
        "id": 4,
        "method": "tools/call",
        "params": {"name": "get_pod_logs", "arguments": {"namespace": "shop", "pod": "frontend-59b8c7d6e4-a1b2c"}},
    }
    result = legacy.request(bad)["result"]
    assert result["isError"] is True and "web, envoy" in result["content"][0]["text"]
    # Still working after the error.
    ping = legacy.request({"jsonrpc": "2.0", "id": 5, "method": "ping"})
    assert ping["result"] == {}


def test_legacy_message_endpoint_errors(legacy):
    client = legacy.client
    r = client.post("/message", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert r.status_code == 400 and "sessionId" in r.text
    r = client.post(
        "/message?sessionId=ffffffffffffffffffffffffffffffff", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}
    )
    assert r.status_code == 404 and "GET /sse" in r.text
    r = client.post(legacy.endpoint, content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "JSON-RPC" in r.text
    # The session survives a rejected message.
    init = legacy.request(initialize_request("2024-11-05"))
    assert init["result"]["protocolVersion"] == "2024-11-05"


def test_legacy_session_is_closed_with_its_stream(http_server):
    with httpx.Client(base_url=http_server.base_url, timeout=10.0) as client:
        with client.stream("GET", "/sse") as resp:
            session = LegacySse(client, resp)
            endpoint = session.endpoint
            assert session.request(initialize_request("2024-11-05"))["result"]["protocolVersion"] == "2024-11-05"
        # The stream is closed; the server forgets the session (poll until it noticed the disconnect).
        deadline = time.monotonic() + 10
        while True:
            r = client.post(endpoint, json={"jsonrpc": "2.0", "id": 2, "method": "ping"})
            if r.status_code in (404, 410) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert r.status_code in (404, 410), f"session still open after its stream closed: {r.status_code}"
