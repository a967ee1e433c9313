#!/usr/bin/env python3
"""Whole-server benchmarks over the real transports (results go to BENCHMARKS.md).

1. stdio: time from process start to the tools/list answer; resident memory idle and
   after 1,000 tool calls; round-trip latency of calls over stdio.
2. Streamable HTTP: throughput of tool calls with 1 client and with 16 concurrent clients
   (httpx), each with its own MCP session.
3. Abandoned sessions: resident memory after 1,000 Streamable HTTP sessions are opened and
   left, and after they expire (--session-idle SECONDS sets the server's idle timeout).

Speaks raw JSON-RPC so that the client adds as little as possible.
Usage: python bench/mcp_bench.py [--bin PATH] [--calls 1000] [--clients 16] [--http-calls 200]
                                [--sessions 1000] [--session-idle SECONDS]
"""
import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import tempfile
import time

# Each server process gets a fresh audit log: the server verifies its log's hash chain when
# it opens it, so start-up time would otherwise grow with the default log's history.
_AUDIT_DIR = tempfile.TemporaryDirectory(prefix="eks-ops-mcp-bench-")


def server_env():
    env = dict(os.environ)
    env["EKS_OPS_MCP_AUDIT_LOG"] = os.path.join(_AUDIT_DIR.name, f"audit-{time.monotonic_ns()}.jsonl")
    return env

PROTO = "2025-06-18"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def cpu_s(pid):
    """User + system CPU seconds the process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round((len(xs) - 1) * p))]


class Stdio:
    def __init__(self, binary):
        self.t0 = time.perf_counter()
        self.p = subprocess.Popen([binary, "serve", "--sandbox", "--log", "warn"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0, env=server_env())
        self.next_id = 0

    def send(self, msg):
        self.p.stdin.write((json.dumps(msg) + "\n").encode())

    def request(self, method, params):
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError("server closed stdout")
            msg = json.loads(line)
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(msg["error"])
                return msg["result"]

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=10)


def bench_stdio(binary, calls):
    s = Stdio(binary)
    s.request("initialize", {"protocolVersion": PROTO, "capabilities": {},
                             "clientInfo": {"name": "bench", "version": "0"}})
    s.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    tools = s.request("tools/list", {})
    startup = time.perf_counter() - s.t0
    assert len(tools["tools"]) >= 6
    time.sleep(0.5)
    idle = rss_kib(s.p.pid)
    lat = []
    args = [("get_pod_status", {"namespace": "shop"}), ("get_events", {"namespace": "shop"})]
    for i in range(calls):
        name, a = args[i % 2]
        t = time.perf_counter()
        r = s.request("tools/call", {"name": name, "arguments": a})
        lat.append(time.perf_counter() - t)
        assert not r.get("isError"), r
    after = rss_kib(s.p.pid)
    for i in range(calls):
        name, a = args[i % 2]
        s.request("tools/call", {"name": name, "arguments": a})
    after2 = rss_kib(s.p.pid)
    s.close()
    return {"startup_to_tools_list_ms": startup * 1000, "rss_idle_mib": idle / 1024,
            f"rss_after_{calls}_calls_mib": after / 1024, f"rss_after_{2 * calls}_calls_mib": after2 / 1024,
            "stdio_call_p50_ms": pct(lat, 0.5) * 1000, "stdio_call_p99_ms": pct(lat, 0.99) * 1000}


def parse_body(resp):
    ctype = resp.headers.get("content-type", "")
    if "text/event-stream" in ctype:
        for line in resp.text.splitlines():
            if line.startswith("data:") and line[5:].strip():
                msg = json.loads(line[5:])
                if "id" in msg:
                    return msg
        raise RuntimeError("no response in SSE body")
    return resp.json()


async def http_client(httpx, url, n, lat):
    hdr = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(url, headers=hdr, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": PROTO, "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}})
        r.raise_for_status()
        sid = r.headers.get("mcp-session-id")
        parse_body(r)
        h = dict(hdr, **{"MCP-Protocol-Version": PROTO})
        if sid:
            h["Mcp-Session-Id"] = sid
        await c.post(url, headers=h, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        for i in range(n):
            t = time.perf_counter()
            r = await c.post(url, headers=h, json={"jsonrpc": "2.0", "id": i + 2, "method": "tools/call",
                                                    "params": {"name": "get_pod_status",
                                                               "arguments": {"namespace": "shop"}}})
            msg = parse_body(r)
            lat.append(time.perf_counter() - t)
            assert "result" in msg and not msg["result"].get("isError"), msg


def import_httpx():
    try:
        import httpx
    except ImportError:  # the mcp SDK 2.x ships httpx2
        import httpx2 as httpx
    return httpx


def start_http(binary, *extra):
    """Start an HTTP server; returns (process, /mcp URL)."""
    p = subprocess.Popen([binary, "serve", "--sandbox", "--http", "127.0.0.1:0", "--log", "warn", *extra],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env=server_env())
    port = None
    deadline = time.time() + 30
    while time.time() < deadline and port is None:
        line = p.stderr.readline()
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line or "")
        if m:
            port = int(m.group(1))
    if not port:
        p.kill()
        raise RuntimeError("server did not report its port")
    return p, f"http://127.0.0.1:{port}/mcp"


def bench_http(binary, clients, per_client):
    httpx = import_httpx()
    p, url = start_http(binary)
    try:
        lat = []

        async def run():
            await asyncio.gather(*(http_client(httpx, url, per_client, lat) for _ in range(clients)))

        cpu0 = cpu_s(p.pid)
        t = time.perf_counter()
        asyncio.run(run())
        wall = time.perf_counter() - t
        cpu = cpu_s(p.pid) - cpu0
        rss = rss_kib(p.pid)
        k = f"http_{clients}c"
        return {f"{k}_calls": len(lat), f"{k}_calls_per_s": len(lat) / wall,
                f"{k}_call_p50_ms": pct(lat, 0.5) * 1000, f"{k}_call_p99_ms": pct(lat, 0.99) * 1000,
                f"{k}_server_cpu_ms_per_call": cpu * 1000 / len(lat), f"rss_after_{k}_mib": rss / 1024}
    finally:
        p.terminate()
        p.wait(timeout=10)


def bench_abandoned_sessions(binary, sessions, idle):
    """RSS before, after `sessions` initialized-then-abandoned sessions, and `idle` + 20 s later
    (the server's idle timeout set to `idle` if given, else its default)."""
    httpx = import_httpx()
    extra = ("--http-session-idle-timeout", str(idle)) if idle else ()
    p, url = start_http(binary, *extra)
    hdr = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": PROTO, "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}}
    try:
        time.sleep(0.5)
        before = rss_kib(p.pid)
        opened = 0
        with httpx.Client(timeout=30) as c:
            for _ in range(sessions):
                r = c.post(url, headers=hdr, json=init)
                sid = r.headers.get("mcp-session-id")
                if r.status_code != 200 or not sid:
                    continue
                opened += 1
                h = dict(hdr, **{"MCP-Protocol-Version": PROTO, "Mcp-Session-Id": sid})
                c.post(url, headers=h, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        time.sleep(1)
        after = rss_kib(p.pid)
        wait = (idle or 0) + 20
        time.sleep(wait)
        later = rss_kib(p.pid)
        return {"abandoned_sessions_opened": opened, "rss_before_sessions_mib": before / 1024,
                f"rss_after_{sessions}_abandoned_mib": after / 1024,
                f"rss_{wait}s_later_mib": later / 1024}
    finally:
        p.terminate()
        p.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser()
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    ap.add_argument("--bin", default=os.environ.get("EKS_OPS_MCP_BIN", f"{target}/release/eks-ops-mcp"))
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--http-calls", type=int, default=200, help="calls per HTTP client")
    ap.add_argument("--sessions", type=int, default=1000, help="abandoned sessions (0: skip)")
    ap.add_argument("--session-idle", type=int, default=0, help="server's session idle timeout, s")
    ap.add_argument("--only", choices=["stdio", "http", "sessions"], help="run one part")
    a = ap.parse_args()
    out = {}
    if a.only in (None, "stdio"):
        starts = []
        for _ in range(5):
            r = bench_stdio(a.bin, 50)
            starts.append(r["startup_to_tools_list_ms"])
        out["startup_to_tools_list_ms_median_of_5"] = statistics.median(starts)
        out.update(bench_stdio(a.bin, a.calls))
    if a.only in (None, "http"):
        out.update(bench_http(a.bin, 1, a.http_calls * 2))
        out.update(bench_http(a.bin, a.clients, a.http_calls))
    if a.only in (None, "sessions") and a.sessions:
        out.update(bench_abandoned_sessions(a.bin, a.sessions, a.session_idle))
    for k, v in out.items():
        print(f"{k:40s} {v:10.2f}" if isinstance(v, float) else f"{k:40s} {v:10d}")


if __name__ == "__main__":
    main()
