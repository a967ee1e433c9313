"""Behaviour the default scenario cannot show, checked on a small scenario of our
own (`serve --sandbox --scenario FILE`) over stdio:

* events recorded as several Event objects for the same reason on the same object
  are aggregated into one entry (counts summed, first/last seen spanning all);
* credential masking of common credential shapes in log lines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from _e2e import REQUEST_TIMEOUT, connect, parse_time, result_dump, result_text, validate_against

pytestmark = pytest.mark.anyio

NS, POD = "team", "api-0"

# (log line, secret that must not come back)
MASKED_TODAY = [
    ("password=plainPw123", "plainPw123"),
    ('{"password":"jsonPw123"}', "jsonPw123"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "eyJhbGciOiJIUzI1NiJ9"),
    ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
    ("AWS_SECRET_ACCESS_KEY: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEZ", "bPxRfiCYEXAMPLEKEZ"),
    ("dsn postgres://app:pgPassw0rd@db:5432/app", "pgPassw0rd"),
    ("api_key=sk_live_abcdef123456", "sk_live_abcdef123456"),
    ("client_secret=cs_abcdef987654", "cs_abcdef987654"),
    ("temp key ASIAIOSFODNN7EXAMPLF used", "ASIAIOSFODNN7EXAMPLF"),
]
# Environment-variable style names with a prefix: very common in crash logs that dump config.
PREFIXED_NAMES = [
    ("DB_PASSWORD=hunter2hunter2", "hunter2hunter2"),
    ("POSTGRES_PASSWORD: pgS3cretValue", "pgS3cretValue"),
    ("MYSQL_ROOT_PASSWORD=rootPw4242", "rootPw4242"),
    ("STRIPE_API_KEY=sk_live_zzz999", "sk_live_zzz999"),
]
ORDINARY = "GET /cart/1001 200 3ms token_count=5"


def event(name: str, reason: str, message: str, count: int, first: str, last: str, type_: str = "Warning") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{POD}.{name}", "namespace": NS, "creationTimestamp": first},
        "involvedObject": {"kind": "Pod", "namespace": NS, "name": POD, "apiVersion": "v1"},
        "reason": reason,
        "message": message,
        "type": type_,
        "count": count,
        "firstTimestamp": first,
        "lastTimestamp": last,
        "source": {"component": "kubelet"},
    }


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scenario: dict[str, Any] = {
        "name": "e2e-mini",
        "description": "one pod, split events, credential-laden logs",
        "objects": [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": POD, "namespace": NS, "labels": {"app": "api"}, "creationTimestamp": "${now-1h}"},
                "spec": {"nodeName": "node-1", "containers": [{"name": "api", "image": "example/api:1"}]},
                "status": {
                    "phase": "Running",
                    "containerStatuses": [
                        {
                            "name": "api",
                            "restartCount": 0,
                            "ready": True,
                            "state": {"running": {"startedAt": "${now-1h}"}},
                        }
                    ],
                },
            },
            event("a", "BackOff", "older back-off", 3, "${now-50m}", "${now-30m}"),
            event("b", "BackOff", "newer back-off", 4, "${now-20m}", "${now-1m}"),
            event("c", "Pulled", "image pulled", 1, "${now-20m}", "${now-20m}", "Normal"),
        ],
        "logs": [
            {
                "namespace": NS,
                "pod": POD,
                "container": "api",
                "start": "${now-10m}",
                "interval_seconds": 5,
                "lines": [line for line, _ in MASKED_TODAY + PREFIXED_NAMES] + [ORDINARY],
            }
        ],
    }
    path = tmp_path_factory.mktemp("scenario") / "scenario.json"
    path.write_text(json.dumps(scenario))
    return path


async def call_tool(scenario_file: Path, tmp_path: Path, name: str, args: dict[str, Any]):
    with open(tmp_path / "stderr", "w") as errlog:
        async with connect("stdio", stdio_args=["--scenario", str(scenario_file)], stdio_errlog=errlog) as c:
            with anyio.fail_after(REQUEST_TIMEOUT):
                listing = await c.session.list_tools()
                result = await c.session.call_tool(name, args)
    assert not result.is_error, result_text(result)
    validate_against(next(t.output_schema for t in listing.tools if t.name == name), result.structured_content)
    assert result.structured_content["sandbox"] is True
    return result


async def test_split_events_are_aggregated(scenario_file, tmp_path):
    result = await call_tool(scenario_file, tmp_path, "get_events", {"namespace": NS, "reasons": ["backoff"]})
    (group,) = result.structured_content["events"]
    assert (group["kind"], group["name"], group["reason"]) == ("Pod", POD, "BackOff")
    assert group["count"] == 7, "counts of both Event objects are summed"
    assert group["message"] == "newer back-off", "message is the most recent occurrence's"
    span = parse_time(group["last_seen"]) - parse_time(group["first_seen"])
    assert abs(span.total_seconds() - 49 * 60) <= 5, f"first/last seen must span both records, got {span}"
    assert result.structured_content["total_matched"] == 1


async def test_all_event_groups_of_the_object(scenario_file, tmp_path):
    result = await call_tool(scenario_file, tmp_path, "get_events", {"namespace": NS, "kind": "Pod", "name": POD})
    events = result.structured_content["events"]
    assert [(e["reason"], e["count"]) for e in events] == [("BackOff", 7), ("Pulled", 1)]


async def test_common_credentials_are_masked(scenario_file, tmp_path):
    result = await call_tool(scenario_file, tmp_path, "get_pod_logs", {"namespace": NS, "pod": POD})
    sc = result.structured_content
    everything = result_dump(result)
    for line, secret in MASKED_TODAY:
        assert secret not in everything, f"{secret!r} of {line!r} was not masked"
    assert ORDINARY in sc["lines"], "ordinary lines are left alone"
    assert sc["lines_redacted"] >= len(MASKED_TODAY)


async def test_prefixed_credential_names_are_masked(scenario_file, tmp_path):
    result = await call_tool(scenario_file, tmp_path, "get_pod_logs", {"namespace": NS, "pod": POD})
    everything = result_dump(result)
    leaked = [line for line, secret in PREFIXED_NAMES if secret in everything]
    assert not leaked, f"returned unmasked: {leaked}"
