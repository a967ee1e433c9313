"""Metrics and predictive tools over every transport with the official MCP Python SDK, on the
sandbox's Prometheus (three weeks of request rates with daily and weekly cycles): results
validated against the advertised outputSchema, and the forecast chart as image content."""

from __future__ import annotations

import base64
from typing import Any

import anyio
import pytest

from _e2e import REQUEST_TIMEOUT, result_text, validate_against

pytestmark = pytest.mark.anyio

RPS = {"source": "prometheus", "promql": 'http_requests_per_second{service="checkout"}'}


async def call_ok(c, name: str, args: dict[str, Any]):
    with anyio.fail_after(REQUEST_TIMEOUT * 3):
        listing = await c.session.list_tools()
        result = await c.session.call_tool(name, args)
    assert not result.is_error, f"{name}: {result_text(result)}"
    schema = {t.name: t.output_schema for t in listing.tools}[name]
    validate_against(schema, result.structured_content)
    assert result.structured_content["sandbox"] is True
    return result


async def test_forecast_with_chart_and_replicas(open_mcp):
    async with open_mcp() as c:
        r = await call_ok(c, "forecast_load", {"history": {"query": RPS}, "horizon": "2h", "chart": True})
        sc = r.structured_content
        assert sc["seasonality"] == ["daily (288 steps)", "weekly (2016 steps)"]
        assert len(sc["forecast"]) == 24
        assert sc["backtest"]["mase"] < 1.0
        assert all(s["lower"] <= s["point"] <= s["upper"] for s in sc["forecast"])
        images = [b for b in r.content if getattr(b, "type", None) == "image"]
        assert len(images) == 1 and images[0].mime_type == "image/png"
        assert base64.b64decode(images[0].data)[:4] == b"\x89PNG"

        r = await call_ok(
            c,
            "recommend_replicas",
            {"namespace": "shop", "name": "checkout", "history": {"query": RPS}, "capacity_per_pod": 20.0},
        )
        rec = r.structured_content
        assert rec["current_replicas"] == 4
        assert rec["plan"]["proposed"] >= 4
        if rec["action"] == "scale_deployment":
            assert rec["call"]["arguments"]["replicas"] == rec["plan"]["proposed"]


async def test_metrics_anomalies_and_rightsizing(open_mcp):
    async with open_mcp() as c:
        r = await call_ok(c, "query_metrics", {"query": RPS, "window": {"last": "1d"}, "max_points": 50})
        series = r.structured_content["series"]
        assert len(series) == 1 and len(series[0]["points"]) <= 50
        assert series[0]["summary"]["max"] >= series[0]["summary"]["p95"]

        errors = {"source": "prometheus", "promql": 'http_request_error_ratio{service="checkout"}'}
        r = await call_ok(c, "detect_anomalies", {"query": errors, "window": {"last": "2d", "step": "5m"}, "k": 3, "recent": "2h"})
        assert r.structured_content["anomalies_total"] >= 5

        r = await call_ok(
            c,
            "rightsizing",
            {
                "namespace": "payments",
                "name": "payment-api",
                "cpu_query": {"source": "prometheus", "promql": 'container_cpu_usage_cores{namespace="payments"}'},
                "memory_query": {"source": "prometheus", "promql": 'container_memory_working_set_bytes{namespace="payments"}'},
            },
        )
        advice = r.structured_content["containers"][0]
        assert advice["oom_kills"] == 3
        assert "requests.cpu" in advice["recommended"] and "requests.memory" in advice["recommended"]


async def test_bad_forecast_input_is_a_tool_error(open_mcp):
    async with open_mcp() as c:
        with anyio.fail_after(REQUEST_TIMEOUT):
            r = await c.session.call_tool(
                "forecast_load", {"history": {"series": {"timestamps": [1, 2, 3], "values": [1.0, 2.0, 3.0]}}}
            )
        assert r.is_error
        assert "at least 24 h" in result_text(r)
