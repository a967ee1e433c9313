"""Fixtures of the end-to-end suite.

Servers are started on 127.0.0.1 with port 0; the port is read from the
`eks-ops-mcp listening on http://127.0.0.1:PORT` line the server prints on
stderr, readiness is confirmed with /healthz, and every server is stopped by a
finalizer (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from _e2e import (
    TRANSPORTS,
    Connected,
    HttpServer,
    connect,
    server_binary,
    server_env,
    start_http_server,
)

AUTH_TOKEN = "e2e-token-0123456789abcdef"


@pytest.fixture(scope="session", autouse=True)
def server_bin() -> Path:
    path = server_binary()
    if not path.is_file():
        pytest.fail(
            f"server binary {path} not found; build it with "
            "`CARGO_TARGET_DIR=$HOME/.cache/eks-ops-mcp/target cargo build` or set EKS_OPS_MCP_BIN",
            pytrace=False,
        )
    return path


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def tool_definitions(server_bin: Path) -> dict[str, dict[str, Any]]:
    """Tool definitions as printed by `eks-ops-mcp tools` (the CLI's view of the same tools)."""
    out = subprocess.run(
        [str(server_bin), "tools"], capture_output=True, text=True, timeout=30, env=server_env(), check=True
    )
    return {tool["name"]: tool for tool in json.loads(out.stdout)}


def _serve(request: pytest.FixtureRequest, *args: str, token: str | None = None, **env: str) -> HttpServer:
    server = start_http_server(*args, token=token, env=server_env(**env))
    request.addfinalizer(server.stop)
    return server


@pytest.fixture(scope="session")
def http_server(request: pytest.FixtureRequest) -> HttpServer:
    """HTTP server without a token."""
    return _serve(request)


@pytest.fixture(scope="session")
def auth_server(request: pytest.FixtureRequest) -> HttpServer:
    """HTTP server requiring a bearer token (given through EKS_OPS_MCP_AUTH_TOKEN)."""
    return _serve(request, token=AUTH_TOKEN, EKS_OPS_MCP_AUTH_TOKEN=AUTH_TOKEN)


@pytest.fixture(scope="session")
def auth_file_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> HttpServer:
    """HTTP server requiring a bearer token (given through --auth-token-file)."""
    token = "file-token-" + "f" * 24
    token_file = tmp_path_factory.mktemp("token") / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    return _serve(request, "--auth-token-file", str(token_file), token=token)


@pytest.fixture(scope="session")
def allowlist_server(request: pytest.FixtureRequest) -> HttpServer:
    """HTTP server with an extra allowed Origin and Host."""
    return _serve(
        request,
        "--allowed-origin",
        "https://console.example.com",
        "--allowed-host",
        "mcp.internal.example",
    )


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def open_mcp(
    request: pytest.FixtureRequest, transport: str, tmp_path: Path
) -> Iterator[Callable[..., AbstractAsyncContextManager[Connected]]]:
    """Factory: `async with open_mcp() as c:` gives an initialized session over `transport`."""
    http = request.getfixturevalue("http_server") if transport != "stdio" else None
    errlog_path = tmp_path / "stdio-server.stderr"
    with open(errlog_path, "w") as errlog:

        def factory(**kwargs: Any) -> AbstractAsyncContextManager[Connected]:
            return connect(transport, http=http, stdio_errlog=errlog, **kwargs)

        yield factory
