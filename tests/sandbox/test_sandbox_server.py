"""SandboxServer: a sandbox on a background thread that sync and async code can both call."""

from __future__ import annotations

import socket
import threading

import aiohttp
import pytest

from devkit.servers import SandboxServer
from fixtures.sandbox import access_token
from google_token_operator.serving import base_url
from google_token_sandbox.state import SandboxState


def sandbox_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "sandbox-google"]


def test_stop_ends_the_thread() -> None:
    server = SandboxServer().start()
    assert len(sandbox_threads()) == 1

    server.stop()
    server.stop()

    assert sandbox_threads() == []


def test_start_raises_when_the_port_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()

        with pytest.raises(OSError):
            SandboxServer(SandboxState(), port=taken.getsockname()[1]).start()

    assert sandbox_threads() == []


async def test_async_code_can_call_it(sandbox: SandboxServer) -> None:
    token = access_token(sandbox)

    async with (
        aiohttp.ClientSession() as session,
        session.get(
            sandbox.env["GOOGLE_BUSINESS_ACCOUNT_API"] + "/v1/accounts",
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        assert response.status == 200
        assert (await response.json())["accounts"]


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8099"),
        ("0.0.0.0", "http://127.0.0.1:8099"),  # noqa: S104 - only converted, never bound
        ("::", "http://[::1]:8099"),
        ("::1", "http://[::1]:8099"),
        ("localhost", "http://localhost:8099"),
    ],
)
def test_base_url_of_a_bind_address(host: str, url: str) -> None:
    assert base_url(host, 8099) == url
