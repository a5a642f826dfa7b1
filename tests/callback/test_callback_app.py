"""The callback app through its factory, against a fake operator consent API; and its command."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from fixtures.callback import (
    ACCOUNT,
    AUTHORIZED,
    CALLBACK_KEY,
    CLIENT,
    DENIED,
    TOKEN_SECRET,
    FakeOperator,
    answer,
    read_page,
    reply_like_the_operator,
)
from google_token_operator.consent.callback.app import SECURITY_HEADERS, create_app
from google_token_operator.consent.callback.limits import (
    AddressLimits,
    client_address,
    client_key,
)
from google_token_operator.consent_state.contract import (
    CALLBACK_PATH,
    HEALTHZ_PATH,
    KEY_FILE_VARIABLE,
    OPERATOR_URL_VARIABLE,
)

STATE = "st-9f2c1e0b7a6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0"
CODE = "4/0AeaYSHD-not-a-real-code-7Qx"
SCOPE = "openid https://www.googleapis.com/auth/userinfo.email"
TIMEOUT = 10

CallbackClient = TestClient[web.Request, web.Application]


@contextlib.asynccontextmanager
async def served(app: web.Application) -> AsyncIterator[CallbackClient]:
    """The app without an access log, as `google_token_operator.serving.serve` runs it (the
    command's test below shows that the real thing logs no code)."""
    server = TestServer(app)
    await server.start_server(access_log=None)  # runner options go here, not to TestServer()
    async with TestClient(server) as client:
        yield client


@pytest.fixture
async def callback(
    fake_operator: FakeOperator, callback_key_file: Path
) -> AsyncIterator[CallbackClient]:
    async with served(create_app(fake_operator.url, callback_key_file)) as client:
        yield client


async def get_page(client: CallbackClient, **query: str) -> tuple[int, str]:
    async with client.get(CALLBACK_PATH, params=query) as response:
        assert_security_headers(response.headers)
        assert response.content_type == "text/html"
        return response.status, await response.text()


def assert_security_headers(headers: Any) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, name
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp


async def test_a_code_is_handed_over_and_the_success_page_names_client_account_and_secret(
    callback: CallbackClient, fake_operator: FakeOperator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    status, html = await get_page(callback, state=STATE, code=CODE, scope=SCOPE)

    assert fake_operator.received == [{"state": STATE, "code": CODE, "error": None, "scope": SCOPE}]
    assert status == 200
    seen = read_page(html)
    assert seen.heading == "Google account connected"
    assert f"{ACCOUNT} authorized GoogleClient reviews/acme" in seen.text
    assert TOKEN_SECRET in seen.text
    for secret in (CODE, STATE):
        assert secret not in html
        assert secret not in caplog.text
    assert "reviews/acme: authorized" in caplog.text


async def test_a_denial_is_handed_over_so_the_operator_records_it(
    callback: CallbackClient, fake_operator: FakeOperator
) -> None:
    status, html = await get_page(callback, error="access_denied", state=STATE)

    assert fake_operator.received == [
        {"state": STATE, "code": None, "error": "access_denied", "scope": None}
    ]
    assert status == 400
    assert read_page(html).heading == "Consent denied"
    assert DENIED["message"] in read_page(html).text


async def test_a_code_that_comes_with_an_error_is_not_handed_over(
    callback: CallbackClient, fake_operator: FakeOperator
) -> None:
    await get_page(callback, error="server_error", code=CODE, state=STATE)

    assert fake_operator.received[0]["code"] is None
    assert fake_operator.received[0]["error"] == "server_error"


@pytest.mark.parametrize(
    ("body", "status", "heading", "says"),
    [
        (AUTHORIZED, 200, "Google account connected", "within about a minute"),
        (DENIED, 400, "Consent denied", "nothing was stored"),
        (
            answer("invalid_state", 400, "unknown state"),
            400,
            "This consent link is not valid",
            "google-token-operator authorize NAME -n NAMESPACE",
        ),
        (
            answer("no_refresh_token", 400, "no refresh token", client=CLIENT),
            400,
            "Google sent no refresh token",
            "https://myaccount.google.com/permissions",
        ),
        (
            answer(
                "exchange_failed", 400, "Google answered invalid_grant: Bad Request", client=CLIENT
            ),
            400,
            "The consent could not be completed",
            "Google answered invalid_grant: Bad Request",
        ),
        (
            answer("exchange_failed", 502, "Google answered invalid_client: fix it", client=CLIENT),
            502,
            "The consent could not be completed",
            "Google answered invalid_client: fix it",
        ),
    ],
)
async def test_each_outcome_gets_its_page_and_status(
    callback: CallbackClient,
    fake_operator: FakeOperator,
    body: dict[str, Any],
    status: int,
    heading: str,
    says: str,
) -> None:
    fake_operator.answer_with(body)

    got_status, html = await get_page(callback, state=STATE, code=CODE)

    assert got_status == status
    assert read_page(html).heading == heading
    assert says in read_page(html).text
    assert CODE not in html


@pytest.mark.parametrize("query", [{}, {"code": CODE}, {"state": "", "code": CODE}])
async def test_without_a_state_nothing_is_handed_over(
    callback: CallbackClient, fake_operator: FakeOperator, query: dict[str, str]
) -> None:
    status, html = await get_page(callback, **query)

    assert status == 400
    assert read_page(html).heading == "This request has no consent state"
    assert fake_operator.received == []
    assert CODE not in html


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_an_unreachable_operator_gives_a_502_page(callback_key_file: Path) -> None:
    app = create_app(f"http://127.0.0.1:{closed_port()}", callback_key_file)
    async with served(app) as client:
        status, html = await get_page(client, state=STATE, code=CODE)

    assert status == 502
    assert read_page(html).heading == "The operator could not be reached"
    assert "Try the consent URL again in a minute" in read_page(html).text


@pytest.mark.parametrize(
    "reply",
    [
        web.Response(text="<html>Bad gateway</html>", status=502, content_type="text/html"),
        web.json_response({"error": "expected a JSON body"}, status=400),
        web.json_response({**AUTHORIZED, "outcome": "approved"}),
    ],
    ids=["not-json", "not-an-answer", "unknown-outcome"],
)
async def test_an_answer_that_is_not_a_consent_answer_gives_the_502_page(
    callback: CallbackClient, fake_operator: FakeOperator, reply: web.Response
) -> None:
    fake_operator.reply = lambda _: reply

    status, html = await get_page(callback, state=STATE, code=CODE)

    assert status == 502
    assert read_page(html).heading == "The operator could not be reached"


async def test_healthz_and_every_other_answer_carry_the_security_headers(
    callback: CallbackClient,
) -> None:
    async with callback.get(HEALTHZ_PATH) as healthz:
        assert healthz.status == 200
        assert (await healthz.text()).strip() == "ok"
        assert_security_headers(healthz.headers)
    async with callback.get("/elsewhere") as missing:
        assert missing.status == 404
        assert_security_headers(missing.headers)
    async with callback.post(CALLBACK_PATH) as wrong_method:
        assert wrong_method.status == 405
        assert_security_headers(wrong_method.headers)


# -- the `callback` command -------------------------------------------------------------------


def start_callback_command(
    *options: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "google_token_operator", "callback", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def first_line(process: subprocess.Popen[str]) -> str:
    """The first line the process prints, read on a thread so a silent process fails the test."""
    assert process.stdout is not None
    stdout = process.stdout
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    return lines.get(timeout=TIMEOUT)


def test_the_command_serves_until_sigterm(
    fake_operator: FakeOperator, callback_key_file: Path
) -> None:
    env = {
        **os.environ,
        OPERATOR_URL_VARIABLE: fake_operator.url,
        KEY_FILE_VARIABLE: str(callback_key_file),
    }
    process = start_callback_command("--host", "127.0.0.1", "--port", "0", env=env)
    try:
        announced = first_line(process)
        served = re.search(r" on (http://\S+);", announced)
        assert served, announced
        callback_url = served.group(1)
        assert callback_url.endswith(CALLBACK_PATH)

        page = requests.get(callback_url, params={"state": STATE, "code": CODE}, timeout=TIMEOUT)
        assert page.status_code == 200
        assert fake_operator.received[-1]["code"] == CODE

        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 0
    assert fake_operator.url in announced
    assert "reviews/acme: authorized" in stderr  # the log is on, and holds no code:
    for secret in (CODE, STATE, CALLBACK_KEY):
        assert secret not in announced + stdout + stderr


async def test_the_callback_authenticates_with_the_mounted_key_and_no_other(
    fake_operator: FakeOperator, callback_key_file: Path, tmp_path: Path
) -> None:
    async with served(create_app(fake_operator.url, callback_key_file)) as client:
        status, _ = await get_page(client, state=STATE, code=CODE)
    assert (status, fake_operator.refused, len(fake_operator.received)) == (200, 0, 1)

    wrong = tmp_path / "wrong-key"
    wrong.write_text("not-the-key")
    async with served(create_app(fake_operator.url, wrong)) as client:
        status, html = await get_page(client, state=STATE, code=CODE)
    assert (status, fake_operator.refused, len(fake_operator.received)) == (502, 1, 1)
    assert read_page(html).heading == "The operator could not be reached"

    async with served(create_app(fake_operator.url, tmp_path / "missing")) as client:
        status, _ = await get_page(client, state=STATE, code=CODE)
    assert (status, fake_operator.refused, len(fake_operator.received)) == (502, 1, 1)


def test_the_command_refuses_an_operator_url_that_is_not_one() -> None:
    process = start_callback_command("--operator-url", "operator:8082")
    _, stderr = process.communicate(timeout=TIMEOUT)

    assert process.returncode == 2
    assert "is not an http(s) URL" in stderr


INVALID = answer("invalid_state", 400, "This consent link is unknown.")


def real_or_garbage(handover: dict[str, Any]) -> web.Response:
    """The operator knows STATE only."""
    return web.json_response(AUTHORIZED if handover["state"] == STATE else INVALID)


async def get_from(client: CallbackClient, address: str, **query: str) -> tuple[int, str, str]:
    """A GET as the trusted proxy forwards it for `address`: status, Retry-After, page."""
    headers = {"X-Forwarded-For": f"203.0.113.250, {address}"}
    async with client.get(CALLBACK_PATH, params=query, headers=headers) as response:
        return response.status, response.headers.get("Retry-After", ""), await response.text()


async def test_one_address_flooding_made_up_states_is_limited_and_others_are_not(
    fake_operator: FakeOperator, callback_key_file: Path
) -> None:
    fake_operator.reply = real_or_garbage
    limits = AddressLimits(rate=0.0, burst=10)
    app = create_app(fake_operator.url, callback_key_file, trust_proxy=True, limits=limits)
    async with served(app) as client:
        flood = [await get_from(client, "198.51.100.7", state=f"x{n}", code="c") for n in range(50)]
        real = await get_from(client, "192.0.2.1", state=STATE, code=CODE)

    assert [status for status, _, _ in flood].count(400) == 10
    refused = [(status, retry, read_page(page)) for status, retry, page in flood[10:]]
    assert {(status, retry) for status, retry, _ in refused} == {(503, "5")}
    assert all(page.heading == "Try again in a moment" for _, _, page in refused)
    assert "reload this page" in refused[0][2].text
    assert len(fake_operator.received) == 11  # the refused ones were never handed over
    assert real[0] == 200


async def test_a_person_completing_many_consents_from_one_address_is_never_refused(
    fake_operator: FakeOperator, callback_key_file: Path
) -> None:
    limits = AddressLimits(rate=0.0, burst=2)
    async with served(create_app(fake_operator.url, callback_key_file, limits=limits)) as client:
        statuses = [(await get_page(client, state=STATE, code=CODE))[0] for _ in range(30)]

    assert statuses == [200] * 30


async def test_without_a_trusted_proxy_x_forwarded_for_is_ignored(
    fake_operator: FakeOperator, callback_key_file: Path
) -> None:
    fake_operator.reply = real_or_garbage
    limits = AddressLimits(rate=0.0, burst=3)
    async with served(create_app(fake_operator.url, callback_key_file, limits=limits)) as client:
        spoofed = [await get_from(client, f"192.0.2.{n}", state="x", code="c") for n in range(10)]

    assert [status for status, _, _ in spoofed] == [400] * 3 + [503] * 7


async def test_a_consent_api_refusal_for_load_asks_for_a_reload_which_hands_the_code_over_again(
    callback: CallbackClient, fake_operator: FakeOperator
) -> None:
    fake_operator.reply = lambda _: web.json_response({"error": "too many"}, status=429)
    async with callback.get(CALLBACK_PATH, params={"state": STATE, "code": CODE}) as response:
        busy = (response.status, response.headers.get("Retry-After"), await response.text())
    fake_operator.reply = reply_like_the_operator
    reload_status, _ = await get_page(callback, state=STATE, code=CODE)

    assert busy[:2] == (503, "5")
    assert read_page(busy[2]).heading == "Try again in a moment"
    assert [handover["code"] for handover in fake_operator.received] == [CODE, CODE]
    assert reload_status == 200


def test_the_address_map_stays_within_its_cap_and_groups_ipv6_by_64() -> None:
    limits = AddressLimits(rate=0.0, burst=1, capacity=100)
    for number in range(10_000):
        limits.charge(f"10.{number // 65536}.{number // 256 % 256}.{number % 256}")
    assert len(limits) == 100

    assert limits.charge("2001:db8::1") is not None
    assert limits.charge("2001:db8::ffff:2") is None  # the same /64
    assert limits.charge("2001:db8:0:1::1") is not None
    assert client_key("2001:db8::1") == "2001:db8::/64"
    assert client_address("10.0.0.1", "1.2.3.4, 5.6.7.8", trust_proxy=False) == "10.0.0.1"
    assert client_address("10.0.0.1", "1.2.3.4, 5.6.7.8", trust_proxy=True) == "5.6.7.8"
    assert client_address("10.0.0.1", "", trust_proxy=True) == "10.0.0.1"
