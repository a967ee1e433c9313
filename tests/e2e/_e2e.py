"""Shared helpers of the end-to-end suite: locating and running the server binary,
opening MCP sessions over the three transports with the official SDK, and
validating structured tool output against the tools' output schemas."""

from __future__ import annotations

import json
import os
import tempfile
import re
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import anyio
import httpx
import httpx2
import jsonschema
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

# --------------------------------------------------------------------------- binary

DEFAULT_BIN = Path.home() / ".cache/eks-ops-mcp/target/debug/eks-ops-mcp"


def server_binary() -> Path:
    """The server under test: $EKS_OPS_MCP_BIN, else the default cargo target path."""
    return Path(os.environ.get("EKS_OPS_MCP_BIN") or DEFAULT_BIN)


_STATE = tempfile.mkdtemp(prefix="eks-ops-mcp-e2e-")
AUDIT_LOG = os.path.join(_STATE, "audit.jsonl")
FORECAST_STORE = os.path.join(_STATE, "forecasts.jsonl")


def server_env(**extra: str) -> dict[str, str]:
    """Environment for a server process: ours, minus any inherited token, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EKS_OPS_MCP_")}
    env["EKS_OPS_MCP_LOG"] = "info"
    # keep the audit records of test servers out of the user's state folder
    env["EKS_OPS_MCP_AUDIT_LOG"] = AUDIT_LOG
    env["EKS_OPS_MCP_FORECAST_STORE"] = FORECAST_STORE
    env.update(extra)
    return env


# --------------------------------------------------------------------------- facts of the scenario

TOOL_NAMES = {
    "get_events",
    "get_pod_logs",
    "get_pod_status",
    "list_workloads",
    "get_node_status",
    "get_rollout_history",
}
NAMESPACES = {"payments", "shop", "data", "kube-system", "default"}
CART_POD = "cart-7d9f8b6c5d-xk2lp"
FRONTEND_POD = "frontend-59b8c7d6e4-a1b2c"
PAYMENT_POD = "payment-api-7c9d8f6b5d-k7x2p"
PRESSURE_NODE = "ip-10-0-2-22.eu-west-1.compute.internal"
CORDONED_NODE = "ip-10-0-3-33.eu-west-1.compute.internal"
HEALTHY_NODE = "ip-10-0-1-11.eu-west-1.compute.internal"
# Credentials present in the cart pod's previous-instance logs; they must never leave the server.
CART_SECRETS = ("Sup3rS3cret", "AKIAIOSFODNN7EXAMPLE")

LISTENING_RE = re.compile(r"eks-ops-mcp listening on (http://127\.0\.0\.1:(\d+))")


# --------------------------------------------------------------------------- HTTP server process


@dataclass
class HttpServer:
    """A running `eks-ops-mcp serve --sandbox --http 127.0.0.1:0` process."""

    args: list[str]
    env: dict[str, str]
    token: str | None = None
    proc: subprocess.Popen[str] | None = None
    base_url: str = ""
    port: int = 0
    stderr_lines: list[str] = field(default_factory=list)
    _listening: threading.Event = field(default_factory=threading.Event)
    _reader: threading.Thread | None = None

    def start(self, timeout: float = 20.0) -> HttpServer:
        self.proc = subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        # Wait for the machine-readable line; wake early if the process dies.
        while not self._listening.wait(0.05):
            if self.proc.poll() is not None:
                self._reader.join(2)
                raise RuntimeError(f"server exited with {self.proc.returncode} before listening:\n{self.stderr()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not print its listening line in {timeout}s:\n{self.stderr()}")
        self.wait_healthy(deadline)
        return self

    def _read_stderr(self) -> None:
        assert self.proc and self.proc.stderr
        for line in self.proc.stderr:
            self.stderr_lines.append(line.rstrip("\n"))
            if not self._listening.is_set():
                m = LISTENING_RE.search(line)
                if m:
                    self.base_url, self.port = m.group(1), int(m.group(2))
                    self._listening.set()

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def wait_healthy(self, deadline: float) -> None:
        """Readiness check: /healthz answers 200 (the listener is bound before the line is printed,
        so this normally succeeds on the first try)."""
        last: Exception | str = "no attempt"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                try:
                    r = client.get(self.base_url + "/healthz", headers=self.auth_headers())
                    if r.status_code == 200:
                        return
                    last = f"HTTP {r.status_code}: {r.text}"
                except httpx.HTTPError as e:
                    last = e
                time.sleep(0.05)
        raise RuntimeError(f"/healthz never became ready: {last}\n{self.stderr()}")

    def stderr(self) -> str:
        return "\n".join(self.stderr_lines)

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if self._reader:
            self._reader.join(2)


def start_http_server(*extra_args: str, token: str | None = None, env: dict[str, str] | None = None) -> HttpServer:
    args = [str(server_binary()), "serve", "--sandbox", "--http", "127.0.0.1:0", *extra_args]
    return HttpServer(args=args, env=env if env is not None else server_env(), token=token).start()


# --------------------------------------------------------------------------- MCP sessions

TRANSPORTS = ("stdio", "streamable_http", "sse")
# Upper bound of one request/response exchange.
REQUEST_TIMEOUT = 15.0


@dataclass
class Connected:
    session: ClientSession
    init: Any  # mcp_types.InitializeResult
    transport: str
    stream_exceptions: list[Exception]


@asynccontextmanager
async def connect(
    transport: str,
    *,
    http: HttpServer | None = None,
    headers: dict[str, str] | None = None,
    stdio_errlog: IO[str] | None = None,
    stdio_args: Iterable[str] = (),
) -> AsyncIterator[Connected]:
    """Open and initialize an MCP session with the official SDK over `transport`
    (`stdio_args` are extra `serve` arguments for the stdio server, e.g. --scenario)."""
    stream_exceptions: list[Exception] = []

    async def on_message(message: Any) -> None:
        # Transport-level problems (e.g. unparsable lines on stdout) arrive here.
        if isinstance(message, Exception):
            stream_exceptions.append(message)

    # The SDK's task groups wrap whatever escapes the session in (nested) exception
    # groups; unwrap a lone exception so failures read plainly and can be matched.
    try:
        async with AsyncExitStack() as stack:
            if transport == "stdio":
                params = StdioServerParameters(
                    command=str(server_binary()),
                    args=["serve", "--sandbox", *stdio_args],
                    env={"EKS_OPS_MCP_LOG": "info", "EKS_OPS_MCP_AUDIT_LOG": AUDIT_LOG, "EKS_OPS_MCP_FORECAST_STORE": FORECAST_STORE},
                )
                errlog = stdio_errlog or stack.enter_context(open(os.devnull, "w"))  # noqa: SIM115
                read, write = await stack.enter_async_context(stdio_client(params, errlog=errlog))
            elif transport == "streamable_http":
                assert http is not None, "streamable_http needs an HTTP server"
                client = await stack.enter_async_context(
                    httpx2.AsyncClient(
                        headers=headers if headers is not None else http.auth_headers(),
                        timeout=httpx2.Timeout(REQUEST_TIMEOUT, read=REQUEST_TIMEOUT * 2),
                    )
                )
                read, write = await stack.enter_async_context(
                    streamable_http_client(http.base_url + "/mcp", http_client=client)
                )
            elif transport == "sse":
                assert http is not None, "sse needs an HTTP server"
                read, write = await stack.enter_async_context(
                    sse_client(
                        http.base_url + "/sse",
                        headers=headers if headers is not None else http.auth_headers(),
                        timeout=REQUEST_TIMEOUT,
                        sse_read_timeout=REQUEST_TIMEOUT * 4,
                    )
                )
            else:  # pragma: no cover
                raise ValueError(f"unknown transport {transport!r}")
            session = await stack.enter_async_context(
                ClientSession(read, write, read_timeout_seconds=REQUEST_TIMEOUT, message_handler=on_message)
            )
            with anyio.fail_after(REQUEST_TIMEOUT):
                init = await session.initialize()
            yield Connected(session=session, init=init, transport=transport, stream_exceptions=stream_exceptions)
    except BaseExceptionGroup as group:
        leaves = leaf_exceptions(group)
        if len(leaves) == 1:
            raise leaves[0] from None
        raise


def leaf_exceptions(exc: BaseException) -> list[BaseException]:
    """Flatten (nested) exception groups into their leaf exceptions."""
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for sub in exc.exceptions:
            out.extend(leaf_exceptions(sub))
        return out
    return [exc]


# --------------------------------------------------------------------------- results and schemas


def _int_in(lo: int, hi: int):
    def check(value: object) -> bool:
        # Formats only constrain integers; other types pass (the `type` keyword handles them).
        if isinstance(value, bool) or not isinstance(value, int):
            return True
        return lo <= value <= hi

    return check


# schemars emits these integer formats; give them teeth instead of letting them pass as unknown.
FORMAT_CHECKER = jsonschema.FormatChecker()
FORMAT_CHECKER.checks("int32")(_int_in(-(2**31), 2**31 - 1))
FORMAT_CHECKER.checks("int64")(_int_in(-(2**63), 2**63 - 1))
FORMAT_CHECKER.checks("uint")(_int_in(0, 2**64 - 1))


def validate_against(schema: dict[str, Any], instance: Any) -> None:
    """Validate with the validator class the schema's $schema names (Draft 2020-12 here)."""
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    errors = sorted(cls(schema, format_checker=FORMAT_CHECKER).iter_errors(instance), key=lambda e: list(e.path))
    if errors:
        details = "\n".join(f"- at {list(e.absolute_path)}: {e.message}" for e in errors[:10])
        raise AssertionError(f"structuredContent does not match the outputSchema:\n{details}")


def result_text(result: Any) -> str:
    """All text content blocks of a CallToolResult, joined."""
    return "\n".join(block.text for block in result.content if getattr(block, "type", None) == "text")


def result_dump(result: Any) -> str:
    """Everything the server sent back for a tool call, as one string (for leak checks)."""
    return json.dumps(result.model_dump(mode="json", by_alias=True), ensure_ascii=False)


def parse_time(value: str) -> datetime:
    """Parse an RFC 3339 timestamp (as the server writes them, e.g. 2026-01-02T03:04:05Z)."""
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert dt.tzinfo is not None, f"timestamp without offset: {value}"
    return dt


def by_key(items: Iterable[dict[str, Any]], key: str = "name") -> dict[str, dict[str, Any]]:
    return {item[key]: item for item in items}
