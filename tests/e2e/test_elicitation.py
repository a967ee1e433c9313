"""Human approval of escalated actions through MCP elicitation, with the official Python SDK
as the client.

Two eras of the protocol, each over stdio and Streamable HTTP (and legacy SSE for the
handshake era):

* handshake (`ClientSession.initialize()`, protocol 2025-11-25): the server sends an
  `elicitation/create` request to the client while the tool call is in flight;
* modern (`mcp.client.Client`, whose default `mode="auto"` negotiates 2026-07-28 through
  `server/discover`): server-to-client requests are forbidden, so the call answers
  `input_required` with the elicitation request and the SDK retries with the answer.

In the sandbox, shop/checkout runs 4 replicas: 20 escalates (more than twice), 5 is allowed,
150 is denied (ceiling 100)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp.client import Client
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from _e2e import REQUEST_TIMEOUT, HttpServer, leaf_exceptions, server_binary, server_env, start_http_server

pytestmark = pytest.mark.anyio

CLIENT_NAME = "e2e-approver"
HANDSHAKE_VERSION = "2025-11-25"
MODERN_VERSION = "2026-07-28"
SCALE = {"namespace": "shop", "name": "checkout"}
ESCALATED, ALLOWED, DENIED = 20, 5, 150
INITIAL_REPLICAS = 4

# (transport, era): the modern era has no legacy-SSE client in the SDK
VARIANTS = [
    ("stdio", "handshake"),
    ("stdio", "modern"),
    ("streamable_http", "handshake"),
    ("streamable_http", "modern"),
    ("sse", "handshake"),
]


# --------------------------------------------------------------------------- the human


@dataclass
class Human:
    """An elicitation callback that records every question and gives a fixed answer."""

    answer: types.ElicitResult | types.ErrorData
    delay: float = 0.0
    asked: list[types.ElicitRequestParams] = field(default_factory=list)

    async def __call__(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult | types.ErrorData:
        self.asked.append(params)
        if self.delay:
            await anyio.sleep(self.delay)
        return self.answer


def approves(comment: str | None = None) -> Human:
    content: dict[str, Any] = {"approve": True}
    if comment is not None:
        content["comment"] = comment
    return Human(types.ElicitResult(action="accept", content=content))


# --------------------------------------------------------------------------- sessions


@dataclass
class Session:
    """A connected client, whichever era: `call` runs a tool to its final result."""

    protocol_version: str
    call: Callable[[str, dict[str, Any]], Awaitable[types.CallToolResult]]


@dataclass
class Target:
    transport: str
    era: str
    audit_log: Path
    tmp_path: Path
    extra_args: tuple[str, ...] = ()
    http: HttpServer | None = None

    def env(self) -> dict[str, str]:
        return server_env(EKS_OPS_MCP_AUDIT_LOG=str(self.audit_log))

    def stdio_params(self) -> StdioServerParameters:
        return StdioServerParameters(
            command=str(server_binary()), args=["serve", "--sandbox", *self.extra_args], env=self.env()
        )

    def decided(self, tool: str = "scale_deployment") -> list[dict[str, Any]]:
        """The guard's decision records of `tool` in this target's audit log."""
        if not self.audit_log.exists():
            return []
        records = [json.loads(line) for line in self.audit_log.read_text().splitlines() if line.strip()]
        return [r for r in records if r.get("phase") == "decided" and r.get("tool") == tool]

    @asynccontextmanager
    async def connect(self, human: Human | None) -> AsyncIterator[Session]:
        """A session with `human` as the elicitation callback (none: no elicitation capability)."""
        info = types.Implementation(name=CLIENT_NAME, version="1.0")
        try:
            async with AsyncExitStack() as stack:
                if self.era == "modern":
                    target: Any = self.stdio_params() if self.transport == "stdio" else self._url("/mcp")
                    client = await stack.enter_async_context(
                        Client(
                            target,
                            elicitation_callback=human,
                            client_info=info,
                            read_timeout_seconds=REQUEST_TIMEOUT,
                        )
                    )
                    yield Session(client.protocol_version, client.call_tool)
                    return
                if self.transport == "stdio":
                    errlog = stack.enter_context(open(self.tmp_path / "stdio-server.stderr", "a"))  # noqa: SIM115
                    read, write = await stack.enter_async_context(stdio_client(self.stdio_params(), errlog=errlog))
                elif self.transport == "streamable_http":
                    http_client = await stack.enter_async_context(
                        httpx2.AsyncClient(timeout=httpx2.Timeout(REQUEST_TIMEOUT, read=REQUEST_TIMEOUT * 2))
                    )
                    read, write = await stack.enter_async_context(
                        streamable_http_client(self._url("/mcp"), http_client=http_client)
                    )
                else:
                    read, write = await stack.enter_async_context(
                        sse_client(self._url("/sse"), timeout=REQUEST_TIMEOUT, sse_read_timeout=REQUEST_TIMEOUT * 4)
                    )
                session = await stack.enter_async_context(
                    ClientSession(
                        read, write, read_timeout_seconds=REQUEST_TIMEOUT, elicitation_callback=human, client_info=info
                    )
                )
                with anyio.fail_after(REQUEST_TIMEOUT):
                    init = await session.initialize()
                yield Session(init.protocol_version, session.call_tool)
        except BaseExceptionGroup as group:
            leaves = leaf_exceptions(group)
            if len(leaves) == 1:
                raise leaves[0] from None
            raise

    def _url(self, path: str) -> str:
        assert self.http is not None
        return self.http.base_url + path


def make_target(request: pytest.FixtureRequest, tmp_path: Path, *extra_args: str) -> Target:
    """A fresh server per test (mutations must not leak into other tests' servers)."""
    transport, era = request.param
    target = Target(transport, era, tmp_path / "audit.jsonl", tmp_path, tuple(extra_args))
    if transport != "stdio":
        target.http = start_http_server(*extra_args, env=target.env())
        request.addfinalizer(target.http.stop)
    return target


@pytest.fixture(params=VARIANTS, ids=[f"{t}-{e}" for t, e in VARIANTS])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    return make_target(request, tmp_path)


@pytest.fixture(params=VARIANTS, ids=[f"{t}-{e}" for t, e in VARIANTS])
def slow_target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """A human has 5 s to answer an approval request."""
    return make_target(request, tmp_path, "--approval-timeout", "5")


# --------------------------------------------------------------------------- helpers


async def scale(session: Session, replicas: int) -> dict[str, Any]:
    with anyio.fail_after(REQUEST_TIMEOUT * 2):
        result = await session.call("scale_deployment", {**SCALE, "replicas": replicas})
    assert not result.is_error, result
    assert result.structured_content is not None
    return result.structured_content


async def checkout_replicas(session: Session) -> int:
    """Desired replicas of shop/checkout, as list_workloads reports them."""
    with anyio.fail_after(REQUEST_TIMEOUT):
        result = await session.call("list_workloads", {"namespace": "shop"})
    assert not result.is_error, result
    [checkout] = [w for w in result.structured_content["workloads"] if w["name"] == "checkout"]
    return checkout["desired"]


def assert_era(target: Target, session: Session) -> None:
    expected = MODERN_VERSION if target.era == "modern" else HANDSHAKE_VERSION
    assert session.protocol_version == expected


def assert_not_applied(report: dict[str, Any], approval: str) -> None:
    assert report["status"] == "escalation_required", report
    assert report["approval"] == approval
    assert report["escalation"]["approval"] == approval
    assert report["decision"]["outcome"] == "escalate"
    assert "result" not in report and "verified" not in report


# --------------------------------------------------------------------------- tests


async def test_an_approved_escalation_is_applied(target: Target) -> None:
    human = approves(comment="go ahead")
    async with target.connect(human) as session:
        assert_era(target, session)
        report = await scale(session, ESCALATED)
        assert report["status"] == "applied", report
        assert report["approval"] == "approved"
        assert report["decision"]["reason"].startswith("approved by a human")
        assert report["verified"]["spec_replicas"] == ESCALATED
        assert await checkout_replicas(session) == ESCALATED
    # the human was asked once, with the guard's question and the approval form
    [asked] = human.asked
    assert "scale_deployment on Deployment shop/checkout" in asked.message
    assert f"spec.replicas: {INITIAL_REPLICAS} → {ESCALATED}" in asked.message
    assert "Approve only if you want this change made now." in asked.message
    schema = asked.requested_schema
    assert schema["properties"]["approve"]["type"] == "boolean"
    assert schema["required"] == ["approve"]
    assert schema["properties"]["comment"]["type"] == "string"
    # one decision on record (a resumed call is not decided twice), by this client
    [decided] = target.decided()
    assert decided["approval"] == "approved"
    assert decided["principal"] == CLIENT_NAME


@pytest.mark.parametrize(
    ("answer", "approval"),
    [
        (types.ElicitResult(action="decline"), "declined"),
        (types.ElicitResult(action="accept", content={"approve": False}), "declined"),
        (types.ElicitResult(action="cancel"), "cancelled"),
    ],
    ids=["decline", "approve-false", "cancel"],
)
async def test_anything_but_approval_changes_nothing(
    target: Target, answer: types.ElicitResult, approval: str
) -> None:
    human = Human(answer)
    async with target.connect(human) as session:
        report = await scale(session, ESCALATED)
        assert_not_applied(report, approval)
        assert await checkout_replicas(session) == INITIAL_REPLICAS
    assert len(human.asked) == 1
    [decided] = target.decided()
    assert decided["approval"] == approval


async def test_a_client_without_elicitation_cannot_approve(target: Target) -> None:
    async with target.connect(None) as session:
        report = await scale(session, ESCALATED)
        assert_not_applied(report, "unavailable")
        assert "did not declare the elicitation capability" in report["escalation"]["detail"]
        assert await checkout_replicas(session) == INITIAL_REPLICAS


async def test_an_allowed_call_does_not_ask(target: Target) -> None:
    human = approves()
    async with target.connect(human) as session:
        report = await scale(session, ALLOWED)
        assert report["status"] == "applied", report
        assert report["decision"]["outcome"] == "allow"
        assert "approval" not in report
        assert await checkout_replicas(session) == ALLOWED
    assert human.asked == []


async def test_a_denied_call_is_denied_without_asking(target: Target) -> None:
    human = approves()
    async with target.connect(human) as session:
        report = await scale(session, DENIED)
        assert report["status"] == "denied", report
        assert report["decision"]["outcome"] == "deny"
        assert "approval" not in report
        assert await checkout_replicas(session) == INITIAL_REPLICAS
    assert human.asked == []


async def test_a_human_who_does_not_answer_in_time_approves_nothing(slow_target: Target) -> None:
    # answers "approve", but only after the 5 s approval window (--approval-timeout 5)
    human = Human(types.ElicitResult(action="accept", content={"approve": True}), delay=7.0)
    async with slow_target.connect(human) as session:
        report = await scale(session, ESCALATED)
        assert_not_applied(report, "timed_out")
        assert await checkout_replicas(session) == INITIAL_REPLICAS
    assert len(human.asked) == 1


async def test_a_client_that_refuses_the_question_cannot_approve(tmp_path: Path) -> None:
    # handshake era: the refusal is the answer to the server's request (in the modern era the
    # SDK raises the refusal in the client instead of retrying)
    for transport in ("stdio", "streamable_http"):
        target = Target(transport, "handshake", tmp_path / f"{transport}-audit.jsonl", tmp_path)
        if transport != "stdio":
            target.http = start_http_server(env=target.env())
        try:
            human = Human(types.ErrorData(code=types.INVALID_REQUEST, message="no human at the keyboard"))
            async with target.connect(human) as session:
                report = await scale(session, ESCALATED)
                assert_not_applied(report, "unavailable")
                assert "no human at the keyboard" in report["escalation"]["detail"]
                assert await checkout_replicas(session) == INITIAL_REPLICAS
            assert len(human.asked) == 1
        finally:
            if target.http is not None:
                target.http.stop()

