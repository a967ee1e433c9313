"""Fault injection against the real binary's transports: raw sockets for half-open and
trickling HTTP connections, headers sent twice, absolute-form targets, the Bearer scheme's
case, the connection and session limits; raw lines on stdio that the SDK would never send;
and a full stderr."""

from __future__ import annotations

import json
import select
import socket
import subprocess
import time
from typing import Any

import httpx
import pytest

from _e2e import HttpServer, server_binary, server_env, start_http_server

PROTO = "2025-06-18"
INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": PROTO, "capabilities": {}, "clientInfo": {"name": "edges", "version": "0"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
TOKEN = "edge-token-0123456789abcdef"


@pytest.fixture
def server(request: pytest.FixtureRequest) -> HttpServer:
    """A server with short limits, given by the test's `server_args` marker."""
    marker = request.node.get_closest_marker("server_args")
    args = marker.args if marker else ()
    env = server_env(EKS_OPS_MCP_AUTH_TOKEN=TOKEN)
    s = start_http_server(*args, token=TOKEN, env=env)
    request.addfinalizer(s.stop)
    return s


def raw(server: HttpServer, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    if data:
        sock.sendall(data)
    return sock


def read_all(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (or `timeout`)."""
    sock.settimeout(timeout)
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out


def closed_within(sock: socket.socket, timeout: float) -> bool:
    """Whether the server closes `sock` within `timeout` (EOF or reset on read)."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([sock], [], [], left)
        if ready:
            try:
                if sock.recv(65536) == b"":
                    return True
            except ConnectionResetError:
                return True
    return False


def status_of(response: bytes) -> int:
    line = response.split(b"\r\n", 1)[0]
    return int(line.split()[1]) if line.startswith(b"HTTP/1.1") else 0


def healthz(server: HttpServer) -> int:
    with httpx.Client(timeout=5) as c:
        return c.get(server.base_url + "/healthz", headers=server.auth_headers()).status_code


# --------------------------------------------------------------------------- slow and idle clients


@pytest.mark.server_args("--http-header-timeout", "2")
def test_half_open_connections_are_closed_and_others_are_served_meanwhile(server: HttpServer) -> None:
    partial = b"POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: appl"
    socks = [raw(server, b"" if i % 2 else partial) for i in range(200)]
    try:
        started = time.monotonic()
        # a normal client is served while 200 connections hang
        assert healthz(server) == 200
        open_after = [s for s in socks if not closed_within(s, 6 - (time.monotonic() - started))]
        assert not open_after, f"{len(open_after)} of 200 half-open connections still open after 6 s"
        elapsed = time.monotonic() - started
        assert elapsed >= 1.5, f"connections closed after {elapsed:.1f} s, before the 2 s timeout"
        assert healthz(server) == 200
    finally:
        for s in socks:
            s.close()


@pytest.mark.server_args("--http-header-timeout", "2")
def test_an_idle_keep_alive_connection_is_closed(server: HttpServer) -> None:
    auth = f"Authorization: Bearer {TOKEN}\r\n".encode()
    sock = raw(server, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + auth + b"\r\n")
    try:
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert closed_within(sock, 5)
    finally:
        sock.close()


@pytest.mark.server_args("--http-body-timeout", "2")
def test_a_trickling_body_is_cut(server: HttpServer) -> None:
    head = (
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        "Accept: application/json, text/event-stream\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Length: 400\r\n\r\n"
    ).encode()
    sock = raw(server, head)
    try:
        started = time.monotonic()
        closed = False
        # one byte a second: each read is quick, the whole body never arrives
        for _ in range(8):
            try:
                sock.sendall(b" ")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            ready, _, _ = select.select([sock], [], [], 1.0)
            if ready:
                closed = True
                break
        assert closed, "the server kept reading a trickling body for 8 s"
        assert time.monotonic() - started < 6
    finally:
        sock.close()


@pytest.mark.server_args("--http-max-connections", "4", "--http-header-timeout", "3")
def test_connections_beyond_the_limit_wait_for_a_free_slot(server: HttpServer) -> None:
    idle = [raw(server, b"") for _ in range(4)]
    try:
        time.sleep(0.3)
        started = time.monotonic()
        assert healthz(server) == 200
        waited = time.monotonic() - started
        # the fifth connection is served only once the idle ones time out
        assert 2.0 <= waited < 5.0, f"waited {waited:.2f} s"
    finally:
        for s in idle:
            s.close()


# --------------------------------------------------------------------------- header edges


def send(server: HttpServer, head: str, body: bytes = b"") -> int:
    sock = raw(server, head.encode() + body)
    try:
        return status_of(read_all(sock, 5))
    finally:
        sock.close()


def post_init(target: str, headers: str) -> tuple[str, bytes]:
    body = json.dumps(INIT).encode()
    head = (
        f"POST {target} HTTP/1.1\r\n{headers}Content-Type: application/json\r\n"
        f"Accept: application/json, text/event-stream\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head, body


@pytest.mark.parametrize(
    "headers",
    [
        "Host: localhost\r\nHost: evil.example\r\n",
        "Host: evil.example\r\nHost: localhost\r\n",
        "Host: localhost\r\nOrigin: http://localhost\r\nOrigin: https://evil.example\r\n",
    ],
    ids=["host-then-evil", "evil-then-host", "origin-twice"],
)
def test_a_header_sent_twice_is_refused(server: HttpServer, headers: str) -> None:
    head, body = post_init("/mcp", f"{headers}Authorization: Bearer {TOKEN}\r\n")
    assert send(server, head, body) == 400


def test_an_absolute_target_naming_another_host_is_refused(server: HttpServer) -> None:
    auth = f"Authorization: Bearer {TOKEN}\r\n"
    head, body = post_init("http://evil.example/mcp", f"Host: localhost\r\n{auth}")
    assert send(server, head, body) == 403
    head, body = post_init(f"http://127.0.0.1:{server.port}/mcp", f"Host: localhost\r\n{auth}")
    assert send(server, head, body) == 200


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
def test_the_bearer_scheme_is_case_insensitive(server: HttpServer, scheme: str) -> None:
    with httpx.Client(timeout=5) as c:
        r = c.get(server.base_url + "/healthz", headers={"Authorization": f"{scheme} {TOKEN}"})
        assert r.status_code == 200
        r = c.get(server.base_url + "/healthz", headers={"Authorization": f"{scheme} {TOKEN}x"})
        assert r.status_code == 401


@pytest.mark.server_args("--max-message-bytes", "2048")
def test_a_body_over_the_limit_is_refused_with_413(server: HttpServer) -> None:
    big = {**INIT, "params": {**INIT["params"], "pad": "x" * 4096}}
    with httpx.Client(timeout=5) as c:
        for path in ("/mcp", "/message?sessionId=0123"):
            r = c.post(server.base_url + path, json=big, headers={**MCP_HEADERS, **server.auth_headers()})
            assert r.status_code == 413, (path, r.text)
            assert "2048" in r.json()["error"]["message"]


# --------------------------------------------------------------------------- session bounds


def open_session(c: httpx.Client, server: HttpServer) -> httpx.Response:
    return c.post(server.base_url + "/mcp", json=INIT, headers={**MCP_HEADERS, **server.auth_headers()})


@pytest.mark.server_args("--http-max-sessions", "3")
def test_sessions_are_capped(server: HttpServer) -> None:
    with httpx.Client(timeout=5) as c:
        ids = []
        for _ in range(3):
            r = open_session(c, server)
            assert r.status_code == 200, r.text
            ids.append(r.headers["mcp-session-id"])
        r = open_session(c, server)
        assert r.status_code == 503 and r.headers.get("retry-after"), r.text
        # closing one makes room
        h = {**MCP_HEADERS, **server.auth_headers(), "Mcp-Session-Id": ids[0], "MCP-Protocol-Version": PROTO}
        assert c.delete(server.base_url + "/mcp", headers=h).status_code in (200, 202, 204)
        assert open_session(c, server).status_code == 200
    streams = []
    try:
        with httpx.Client(timeout=5) as c:
            for _ in range(3):
                cm = c.stream("GET", server.base_url + "/sse", headers=server.auth_headers())
                resp = cm.__enter__()
                streams.append(cm)
                assert resp.status_code == 200
            assert c.get(server.base_url + "/sse", headers=server.auth_headers()).status_code == 503
    finally:
        for cm in streams:
            cm.__exit__(None, None, None)


@pytest.mark.server_args("--http-session-idle-timeout", "2")
def test_idle_sessions_expire(server: HttpServer) -> None:
    with httpx.Client(timeout=5) as c:
        r = open_session(c, server)
        sid = r.headers["mcp-session-id"]
        time.sleep(4)
        h = {**MCP_HEADERS, **server.auth_headers(), "Mcp-Session-Id": sid, "MCP-Protocol-Version": PROTO}
        r = c.post(server.base_url + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=h)
        assert r.status_code == 404, r.text
        # a legacy SSE stream without messages ends too
        with c.stream("GET", server.base_url + "/sse", headers=server.auth_headers(), timeout=10) as s:
            started = time.monotonic()
            for _ in s.iter_lines():
                pass
            assert time.monotonic() - started < 8


# --------------------------------------------------------------------------- stdio


class RawStdio:
    """The server over stdio, driven with raw lines."""

    def __init__(self, *args: str, stderr: Any = subprocess.DEVNULL) -> None:
        self.p = subprocess.Popen(
            [str(server_binary()), "serve", "--sandbox", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=server_env(),
        )

    def send(self, line: bytes | str | dict[str, Any]) -> None:
        if isinstance(line, dict):
            line = json.dumps(line)
        if isinstance(line, str):
            line = line.encode()
        assert self.p.stdin
        self.p.stdin.write(line + b"\n")
        self.p.stdin.flush()

    def answers(self, count: int, timeout: float = 15) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        assert self.p.stdout
        while len(out) < count:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.p.stdout], [], [], max(left, 0))
            if not ready:
                raise AssertionError(f"only {len(out)} of {count} answers within {timeout} s: {out}")
            line = self.p.stdout.readline()
            if not line:
                raise AssertionError(f"server closed stdout (exit {self.p.wait()}) after {out}")
            msg = json.loads(line)
            if "id" in msg and "method" not in msg:
                out.append(msg)
        return out

    def initialize(self) -> None:
        self.send(INIT)
        assert "result" in self.answers(1)[0]
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def close(self) -> int:
        assert self.p.stdin
        self.p.stdin.close()
        return self.p.wait(timeout=10)


def call(id_: Any, name: str = "get_events", **arguments: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": {"name": name, "arguments": arguments}}


def test_stdio_answers_every_broken_request_with_its_id() -> None:
    s = RawStdio("--max-message-bytes", "4096")
    try:
        # a notification before initialize is ignored, not fatal
        s.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        s.initialize()
        cases = [
            ('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"get_events"}', 1, -32600),
            ('{"jsonrpc":"1.0","id":2,"method":"tools/list"}', 2, -32600),
            ('{"jsonrpc":"2.0","id":3,"id":3,"method":"tools/list"}', 3, -32600),
            ('{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"get_events",'
             '"arguments":{"namespace":"\\ud800"}}}', 4, -32700),
            ('{"jsonrpc":"2.0","id":"five","method":"tools/call","params":{"name":"get_events",'
             '"arguments":{"namespace":"' + "x" * 8000 + '"}}}', "five", -32600),
            ('{"jsonrpc":"2.0","id":6,"method":"tools/call"}', 6, -32602),
            ('{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"arguments":{}}}', 7, -32602),
            ('{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":["get_events"]}}', 8, -32602),
            ('{"jsonrpc":"2.0","id":9,"method":"no/such/method","params":{}}', 9, -32601),
            ("{not json", None, -32700),
        ]
        for line, _, _ in cases:
            s.send(line)
        got = {json.dumps(a["id"]): a for a in s.answers(len(cases))}
        for line, id_, code in cases:
            answer = got.get(json.dumps(id_))
            assert answer is not None, f"no answer for {line[:60]}"
            assert answer["error"]["code"] == code, (line[:60], answer)
        # and the session goes on
        s.send(call(10, namespace="shop"))
        [ok] = s.answers(1)
        assert ok["id"] == 10 and not ok["result"].get("isError"), ok
    finally:
        assert s.close() == 0


def test_stdio_refuses_a_request_id_already_in_flight() -> None:
    s = RawStdio()
    try:
        s.initialize()
        first = json.dumps(call(7, "get_pod_status", namespace="shop"))
        # both lines in one write: the second is read while the first is being served
        s.send((first + "\n" + first).encode())
        answers = s.answers(2)
        assert [a["id"] for a in answers] == [7, 7]
        errors = [a for a in answers if "error" in a]
        results = [a for a in answers if "result" in a]
        assert len(errors) == 1 and len(results) == 1, answers
        assert errors[0]["error"]["code"] == -32600 and "in progress" in errors[0]["error"]["message"]
        # once answered, the id may be used again
        s.send(call(7, namespace="shop"))
        assert "result" in s.answers(1)[0]
    finally:
        s.close()


def test_stdio_serves_with_stderr_full() -> None:
    with open("/dev/full", "w") as full:
        s = RawStdio("--log", "debug", stderr=full)
        try:
            s.initialize()
            s.send(call(1, namespace="shop"))
            [answer] = s.answers(1)
            assert answer["id"] == 1 and not answer["result"].get("isError"), answer
        finally:
            assert s.close() == 0
