"""The six read tools over every transport (stdio, Streamable HTTP, legacy HTTP+SSE),
driven by the official MCP Python SDK against the embedded sandbox cluster.

Every successful call's structuredContent is validated with jsonschema against the
outputSchema the server advertised in tools/list on the same session, and its
content is checked against the incident scenario (scenarios/default.json)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import anyio
import jsonschema
import mcp_types
import pytest
from mcp.shared.exceptions import MCPError

from _e2e import (
    CART_POD,
    CART_SECRETS,
    CORDONED_NODE,
    FRONTEND_POD,
    HEALTHY_NODE,
    NAMESPACES,
    PAYMENT_POD,
    PRESSURE_NODE,
    REQUEST_TIMEOUT,
    TOOL_NAMES,
    Connected,
    by_key,
    parse_time,
    result_dump,
    result_text,
    validate_against,
)

pytestmark = pytest.mark.anyio


async def output_schemas(c: Connected) -> dict[str, dict[str, Any]]:
    with anyio.fail_after(REQUEST_TIMEOUT):
        listing = await c.session.list_tools()
    return {tool.name: tool.output_schema for tool in listing.tools}


async def call(c: Connected, name: str, args: dict[str, Any]) -> mcp_types.CallToolResult:
    with anyio.fail_after(REQUEST_TIMEOUT):
        return await c.session.call_tool(name, args)


async def call_ok(
    c: Connected, schemas: dict[str, dict[str, Any]], name: str, args: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """Call a tool that must succeed; validate and return (structuredContent, text)."""
    result = await call(c, name, args)
    text = result_text(result)
    assert not result.is_error, f"{name}({args}) failed: {text}"
    sc = result.structured_content
    assert isinstance(sc, dict), f"{name} returned no structuredContent"
    validate_against(schemas[name], sc)
    assert sc["sandbox"] is True
    assert text.strip(), f"{name} returned no text summary"
    return sc, text


# --------------------------------------------------------------------------- handshake and listing


async def test_initialize_and_list_tools(open_mcp, tool_definitions):
    async with open_mcp() as c:
        init = c.init
        assert init.server_info.name == "eks-ops-mcp"
        assert init.protocol_version in mcp_types.version.HANDSHAKE_PROTOCOL_VERSIONS
        assert init.capabilities.tools is not None
        assert "SANDBOX" in (init.instructions or "")

        with anyio.fail_after(REQUEST_TIMEOUT):
            await c.session.send_ping()
            listing = await c.session.list_tools()

        tools = {t.name: t for t in listing.tools}
        assert set(tools) >= TOOL_NAMES, f"missing tools: {TOOL_NAMES - set(tools)}"
        assert set(tools) == set(tool_definitions), "tools/list and the `tools` CLI disagree"
        assert listing.next_cursor is None
        for name in sorted(TOOL_NAMES):
            tool = tools[name]
            assert tool.annotations is not None and tool.annotations.read_only_hint is True, name
            assert tool.annotations.destructive_hint in (None, False), name
            assert tool.description, name
            # outputSchema: a valid JSON Schema for an object that always carries `sandbox`.
            schema = tool.output_schema
            assert isinstance(schema, dict), f"{name} has no outputSchema"
            assert schema.get("type") == "object"
            assert "sandbox" in schema.get("required", []), name
            jsonschema.validators.validator_for(schema).check_schema(schema)
            # inputSchema: closed objects, so unknown arguments are rejected (and reported).
            assert tool.input_schema.get("type") == "object", name
            assert tool.input_schema.get("additionalProperties") is False, name
            # The protocol and the `tools` CLI describe the same tools.
            cli = tool_definitions[name]
            assert tool.input_schema == cli["inputSchema"], name
            assert tool.output_schema == cli["outputSchema"], name
        assert not c.stream_exceptions


# --------------------------------------------------------------------------- every read tool, real content


def check_pod_status_unhealthy(sc: dict[str, Any], text: str) -> None:
    pods = by_key(sc["pods"])
    assert CART_POD in pods, f"cart pod missing from unhealthy pods: {list(pods)}"
    cart = pods[CART_POD]
    assert cart["namespace"] == "shop"
    assert cart["status"] == "CrashLoopBackOff"
    assert cart["restarts"] == 7
    assert cart["ready"] == "0/1"
    (container,) = cart["containers"]
    assert container["name"] == "cart"
    assert container["restart_count"] == 7
    assert container["state"] == "waiting" and container["reason"] == "CrashLoopBackOff"
    assert container["last_terminated"]["exit_code"] == 1
    # The healthy replica of cart and the healthy checkout pods are filtered out.
    assert "cart-7d9f8b6c5d-p9d4s" not in pods
    assert not any(name.startswith("checkout-") for name in pods)
    assert all(p["namespace"] == "shop" for p in sc["pods"])
    assert sc["total_matched"] == len(sc["pods"]) and sc["truncated"] is False
    assert CART_POD in text and "CrashLoopBackOff" in text


def check_pod_status_owner(sc: dict[str, Any], text: str) -> None:
    names = [p["name"] for p in sc["pods"]]
    assert len(names) == 4 and all(n.startswith("checkout-84c5d9f7b6-") for n in names), names
    assert names == sorted(names)
    assert {p["status"] for p in sc["pods"]} == {"Running"}
    assert {p["owner"] for p in sc["pods"]} == {"ReplicaSet/checkout-84c5d9f7b6"}
    for p in sc["pods"]:
        parse_time(p["created"])


def check_pod_logs_previous_masked(sc: dict[str, Any], text: str) -> None:
    assert sc["pod"] == CART_POD and sc["container"] == "cart" and sc["previous"] is True
    lines = sc["lines"]
    assert lines[-1] == "panic: failed to connect to redis: no sentinel available"
    redis = next(line for line in lines if "REDIS_URL" in line)
    aws = next(line for line in lines if "AWS_ACCESS_KEY_ID" in line)
    assert "[REDACTED" in redis and "redis-master.shop.svc:6379" in redis
    assert "[REDACTED" in aws and "region=eu-west-1" in aws
    assert sc["lines_redacted"] == 2
    assert sc["truncated"] is False and sc["lines_dropped"] == 0
    assert "previous" in text


def check_pod_logs_named_container(sc: dict[str, Any], text: str) -> None:
    assert sc["pod"] == FRONTEND_POD and sc["container"] == "envoy" and sc["previous"] is False
    assert len(sc["lines"]) == 5 and sc["lines_read"] == 5
    assert all("via_upstream" in line for line in sc["lines"])


def check_pod_logs_grep_truncated(sc: dict[str, Any], text: str) -> None:
    assert sc["container"] == "payment-api"
    assert sc["truncated"] is True and sc["lines_dropped"] >= 1
    assert sc["grep_matches"] >= 2
    marker, *kept = sc["lines"]
    assert "truncated" in marker, marker
    assert kept and all('"level":"WARN"' in line for line in kept)
    # Newest lines are kept: the last kept line is the newest WARN.
    assert "159 connections" in kept[-1], kept
    assert sc["lines_read"] > sc["grep_matches"]


def check_rollout_history(sc: dict[str, Any], text: str) -> None:
    assert (sc["namespace"], sc["name"]) == ("shop", "checkout")
    assert sc["current_revision"] == 3 and sc["previous_revision"] == 2
    revs = sc["revisions"]
    assert [r["revision"] for r in revs] == [3, 2, 1], "revisions must be newest first"
    r3, r2, r1 = revs
    assert r3["current"] is True and r3["previous"] is False
    assert r2["current"] is False and r2["previous"] is True
    assert r1["current"] is False and r1["previous"] is False
    assert r3["replica_set"] == "checkout-84c5d9f7b6" and r3["images"] == ["public.ecr.aws/acme/checkout:1.4.0"]
    assert r2["replica_set"] == "checkout-6b7f9c8d4f" and r2["replicas"] == 0
    assert parse_time(r3["created"]) > parse_time(r2["created"]) > parse_time(r1["created"])


def check_node_status(sc: dict[str, Any], text: str) -> None:
    names = [n["name"] for n in sc["nodes"]]
    assert names == sorted(names) == [HEALTHY_NODE, PRESSURE_NODE, CORDONED_NODE]
    nodes = by_key(sc["nodes"])
    pressure = nodes[PRESSURE_NODE]
    assert "MemoryPressure" in pressure["problems"]
    conditions = {c["type"]: c for c in pressure["conditions"]}
    assert conditions["MemoryPressure"]["status"] == "True"
    assert pressure["ready"] is True and pressure["cordoned"] is False
    assert pressure["capacity_type"] == "spot"
    assert any(t["key"] == "node.kubernetes.io/memory-pressure" for t in pressure["taints"])
    assert nodes[CORDONED_NODE]["cordoned"] is True
    assert nodes[HEALTHY_NODE]["problems"] == [] and nodes[HEALTHY_NODE]["ready"] is True
    assert "MemoryPressure" in text and PRESSURE_NODE in text


def check_node_status_only_problems(sc: dict[str, Any], text: str) -> None:
    assert [n["name"] for n in sc["nodes"]] == [PRESSURE_NODE, CORDONED_NODE]


def check_events_backoff(sc: dict[str, Any], text: str) -> None:
    events = sc["events"]
    assert events, "no BackOff events in shop"
    assert all(e["reason"].lower() == "backoff" and e["namespace"] == "shop" for e in events)
    cart = next(e for e in events if e["name"] == CART_POD)
    assert cart["kind"] == "Pod" and cart["type"] == "Warning" and cart["source"] == "kubelet"
    assert cart["count"] > 1, "repeated BackOff events must be aggregated"
    assert parse_time(cart["first_seen"]) < parse_time(cart["last_seen"])
    assert sc["total_matched"] == len(events) and sc["truncated"] is False
    assert "BackOff" in text


def check_events_oomkilled(sc: dict[str, Any], text: str) -> None:
    # `OOMKilled` also matches the kernel monitor's `OOMKilling` node events.
    node_events = [e for e in sc["events"] if e["kind"] == "Node" and e["name"] == PRESSURE_NODE]
    assert node_events and node_events[0]["reason"] == "OOMKilling" and node_events[0]["count"] == 3
    assert node_events[0]["namespace"] == ""


def check_events_limit(sc: dict[str, Any], text: str) -> None:
    events = sc["events"]
    assert len(events) == 2 and sc["truncated"] is True and sc["total_matched"] > 2
    seen = [parse_time(e["last_seen"]) for e in events]
    assert seen == sorted(seen, reverse=True), "events must be newest first"


def check_workloads(sc: dict[str, Any], text: str) -> None:
    workloads = sc["workloads"]
    keys = [(w["namespace"], w["kind"], w["name"]) for w in workloads]
    assert keys == sorted(keys), "workloads must be sorted by namespace, kind and name"
    index = {(w["namespace"], w["kind"], w["name"]): w for w in workloads}
    assert ("data", "StatefulSet", "postgres") in index
    assert ("kube-system", "DaemonSet", "aws-node") in index
    assert {w["namespace"] for w in workloads} <= NAMESPACES
    checkout = index[("shop", "Deployment", "checkout")]
    assert checkout["revision"] == "3"
    payment = index[("payments", "Deployment", "payment-api")]
    assert payment["hpa"]["min_replicas"] == 3 and payment["hpa"]["max_replicas"] == 12
    assert payment["ready"] == payment["desired"] == 3


def check_workloads_kinds(sc: dict[str, Any], text: str) -> None:
    assert [(w["kind"], w["name"]) for w in sc["workloads"]] == [("StatefulSet", "postgres")]


ToolCase = tuple[str, dict[str, Any], Callable[[dict[str, Any], str], None]]
TOOL_CASES: dict[str, ToolCase] = {
    "pod_status_unhealthy_shop": (
        "get_pod_status",
        {"namespace": "shop", "only_unhealthy": True},
        check_pod_status_unhealthy,
    ),
    "pod_status_by_owner": (
        "get_pod_status",
        {"namespace": "shop", "owner": "Deployment/checkout"},
        check_pod_status_owner,
    ),
    "pod_logs_previous_masked": (
        "get_pod_logs",
        {"namespace": "shop", "pod": CART_POD, "previous": True},
        check_pod_logs_previous_masked,
    ),
    "pod_logs_named_container": (
        "get_pod_logs",
        {"namespace": "shop", "pod": FRONTEND_POD, "container": "envoy", "tail_lines": 5},
        check_pod_logs_named_container,
    ),
    "pod_logs_grep_truncated": (
        "get_pod_logs",
        {"namespace": "payments", "pod": PAYMENT_POD, "grep": '"level":"WARN"', "limit_bytes": 300},
        check_pod_logs_grep_truncated,
    ),
    "rollout_history_checkout": (
        "get_rollout_history",
        {"namespace": "shop", "name": "checkout"},
        check_rollout_history,
    ),
    "node_status_all": ("get_node_status", {}, check_node_status),
    "node_status_only_problems": ("get_node_status", {"only_problems": True}, check_node_status_only_problems),
    "events_backoff_shop": ("get_events", {"namespace": "shop", "reasons": ["BackOff"]}, check_events_backoff),
    "events_oomkilled": ("get_events", {"reasons": ["OOMKilled"], "type": "Warning"}, check_events_oomkilled),
    "events_limit": ("get_events", {"limit": 2}, check_events_limit),
    "list_workloads_all": ("list_workloads", {}, check_workloads),
    "list_workloads_kinds": ("list_workloads", {"kinds": ["StatefulSet"]}, check_workloads_kinds),
}


@pytest.mark.parametrize("case", list(TOOL_CASES))
async def test_read_tool(open_mcp, case):
    name, args, check = TOOL_CASES[case]
    async with open_mcp() as c:
        schemas = await output_schemas(c)
        sc, text = await call_ok(c, schemas, name, args)
        check(sc, text)
        assert not c.stream_exceptions


async def test_every_tool_in_one_session(open_mcp):
    """All six tools, one after the other, on a single session."""
    async with open_mcp() as c:
        schemas = await output_schemas(c)
        called = set()
        for name, args, check in TOOL_CASES.values():
            sc, text = await call_ok(c, schemas, name, args)
            check(sc, text)
            called.add(name)
        assert called == TOOL_NAMES


async def test_concurrent_calls_are_answered_in_kind(open_mcp):
    """Several calls in flight at once on one session each get their own answer."""
    async with open_mcp() as c:
        schemas = await output_schemas(c)
        results: dict[str, tuple[dict[str, Any], str]] = {}

        async def run(case: str) -> None:
            name, args, _ = TOOL_CASES[case]
            results[case] = await call_ok(c, schemas, name, args)

        async with anyio.create_task_group() as tg:
            for case in TOOL_CASES:
                tg.start_soon(run, case)
        for case, (sc, text) in results.items():
            TOOL_CASES[case][2](sc, text)
        assert set(results) == set(TOOL_CASES)


# --------------------------------------------------------------------------- credentials never leave


async def test_previous_logs_never_leak_credentials(open_mcp):
    async with open_mcp() as c:
        await output_schemas(c)
        for args in (
            {"namespace": "shop", "pod": CART_POD, "previous": True},
            {"namespace": "shop", "pod": CART_POD, "previous": True, "grep": "config:"},
            {"namespace": "shop", "pod": CART_POD, "previous": True, "tail_lines": 10000},
        ):
            result = await call(c, "get_pod_logs", args)
            assert not result.is_error, result_text(result)
            everything = result_dump(result)  # structuredContent and text summary alike
            for secret in CART_SECRETS:
                assert secret not in everything, f"{secret!r} leaked for {args}"
        # The masked lines are in the text summary too (grep narrows to them).
        result = await call(
            c, "get_pod_logs", {"namespace": "shop", "pod": CART_POD, "previous": True, "grep": "config:"}
        )
        text = result_text(result)
        assert "REDIS_URL=redis://cart:[REDACTED]@" in text
        assert "[REDACTED" in text.split("AWS_ACCESS_KEY_ID=")[1]


async def test_grep_cannot_probe_masked_credentials(open_mcp):
    async with open_mcp() as c:
        await output_schemas(c)
        base = {"namespace": "shop", "pod": CART_POD, "previous": True}

        async def matches(pattern: str) -> int:
            result = await call(c, "get_pod_logs", {**base, "grep": pattern})
            assert not result.is_error, result_text(result)
            return result.structured_content["grep_matches"]

        # grep must see what the caller sees: the masked lines.
        assert await matches(re.escape("[REDACTED")) == 2
        # ... and so cannot confirm a secret, whole or a prefix at a time.
        assert await matches("Sup3rS3cret") == 0
        assert await matches("redis://cart:S") == await matches("redis://cart:X") == 0
        assert await matches("AKIAIOSFODNN7EXAMPLE") == 0


# --------------------------------------------------------------------------- bad input


BAD_INPUTS: dict[str, tuple[str, dict[str, Any], list[str]]] = {
    "unknown_argument": (
        "get_events",
        {"namespace": "shop", "bogus": 1},
        ["bogus", "namespace", "reasons"],
    ),
    "wrong_type": ("get_pod_status", {"only_unhealthy": "yes"}, ["boolean"]),
    "missing_required": ("get_rollout_history", {"namespace": "shop"}, ["name"]),
    "invalid_grep_regex": (
        "get_pod_logs",
        {"namespace": "shop", "pod": CART_POD, "grep": "("},
        ["grep", "regular expression"],
    ),
    "unknown_namespace": ("get_events", {"namespace": "nope"}, ["nope", "shop", "payments"]),
    "unknown_pod": ("get_pod_logs", {"namespace": "shop", "pod": "nope"}, ["nope", "get_pod_status"]),
    "multi_container_no_container": (
        "get_pod_logs",
        {"namespace": "shop", "pod": FRONTEND_POD},
        ["container", "web", "envoy"],
    ),
    "unknown_container": (
        "get_pod_logs",
        {"namespace": "shop", "pod": FRONTEND_POD, "container": "nginx"},
        ["nginx", "web", "envoy"],
    ),
    "events_limit_too_small": ("get_events", {"limit": 0}, ["limit", "1", "500"]),
    "pods_limit_too_large": ("get_pod_status", {"limit": 1001}, ["limit", "1000"]),
    "tail_lines_out_of_range": (
        "get_pod_logs",
        {"namespace": "shop", "pod": CART_POD, "tail_lines": 0},
        ["tail_lines", "10000"],
    ),
    "limit_bytes_out_of_range": (
        "get_pod_logs",
        {"namespace": "shop", "pod": CART_POD, "limit_bytes": 2_000_000},
        ["limit_bytes", "1048576"],
    ),
    "bad_since": ("get_pod_logs", {"namespace": "shop", "pod": CART_POD, "since": "forever"}, ["since", "15m"]),
    "since_too_long": ("get_events", {"since": "8d"}, ["since", "7"]),
    "bad_event_type": ("get_events", {"type": "Bogus"}, ["Normal", "Warning"]),
    "bad_label_selector": ("get_pod_status", {"namespace": "shop", "label_selector": "app in (("}, ["label_selector"]),
    "owner_without_namespace": ("get_pod_status", {"owner": "Deployment/checkout"}, ["owner", "namespace"]),
    "unknown_workload_kind": (
        "list_workloads",
        {"kinds": ["CronJob"]},
        ["CronJob", "Deployment", "StatefulSet", "DaemonSet"],
    ),
    "unknown_node": ("get_node_status", {"name": "nope"}, ["nope", PRESSURE_NODE]),
    "unknown_deployment": ("get_rollout_history", {"namespace": "shop", "name": "nope"}, ["nope", "list_workloads"]),
    "no_previous_instance": (
        "get_pod_logs",
        {"namespace": "shop", "pod": "cart-7d9f8b6c5d-p9d4s", "previous": True},
        ["previous"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
async def test_bad_input_is_a_helpful_tool_error(open_mcp, case):
    name, args, expected = BAD_INPUTS[case]
    async with open_mcp() as c:
        schemas = await output_schemas(c)
        result = await call(c, name, args)
        message = result_text(result)
        assert result.is_error is True, f"{name}({args}) should fail, got: {message}"
        assert message.startswith(f"{name}:"), message
        for fragment in expected:
            assert fragment in message, f"{fragment!r} not in error message: {message!r}"
        # The session keeps working after the error.
        sc, text = await call_ok(c, schemas, "get_pod_status", {"namespace": "shop", "only_unhealthy": True})
        check_pod_status_unhealthy(sc, text)


@pytest.mark.parametrize(
    ("name", "args", "argument"),
    [
        ("get_pod_status", {"namespace": "shop", "only_unhealthy": "yes"}, "only_unhealthy"),
        ("get_events", {"reasons": "BackOff"}, "reasons"),
        ("get_pod_logs", {"namespace": "shop", "pod": CART_POD, "tail_lines": "ten"}, "tail_lines"),
    ],
    ids=["bool", "array", "integer"],
)
async def test_type_error_names_the_argument(open_mcp, name, args, argument):
    async with open_mcp() as c:
        result = await call(c, name, args)
        message = result_text(result)
        assert result.is_error is True
        assert argument in message, f"error does not say which argument is wrong: {message!r}"


async def test_unknown_tool_is_a_protocol_error_and_session_survives(open_mcp):
    async with open_mcp() as c:
        schemas = await output_schemas(c)
        with pytest.raises(MCPError) as info:
            await call(c, "delete_namespace", {"namespace": "shop"})
        assert "delete_namespace" in str(info.value)
        assert "get_pod_status" in str(info.value), "the error should list the available tools"
        sc, text = await call_ok(c, schemas, "get_rollout_history", {"namespace": "shop", "name": "checkout"})
        check_rollout_history(sc, text)


async def test_many_errors_then_every_tool_still_works(open_mcp):
    """A burst of bad calls on one session, then every tool still answers correctly."""
    async with open_mcp() as c:
        schemas = await output_schemas(c)
        for name, args, _ in BAD_INPUTS.values():
            result = await call(c, name, args)
            assert result.is_error is True, (name, args)
        for name, args, check in TOOL_CASES.values():
            sc, text = await call_ok(c, schemas, name, args)
            check(sc, text)
