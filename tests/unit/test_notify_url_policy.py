"""The webhook URL policy (pure) and the webhook edge against a real aiohttp receiver on
loopback: what is refused before any request and at connect time, no redirect followed."""

import asyncio
import dataclasses
import datetime as dt
import ipaddress

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from google_token_operator.notify.url_policy import (
    UrlRefused,
    WebhookPolicy,
    check_url,
    parse_networks,
)
from google_token_operator.webhook_http import WebhookError, WebhookHttp, api_server_endpoints

STRICT = WebhookPolicy()
LOOPBACK = WebhookPolicy(allow_http=True, allowed_networks=parse_networks("127.0.0.0/8"))
SECRET_PATH = "/services/T000/B000/s3cr3t-path-value"


def test_https_public_url_passes_and_shows_only_scheme_and_host():
    target = check_url(f"https://hooks.example.com{SECRET_PATH}?token=abc", STRICT)
    assert (target.host, target.port, target.shown) == (
        "hooks.example.com",
        443,
        "https://hooks.example.com",
    )


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://hooks.example.com/x", "NOTIFY_ALLOW_HTTP"),
        ("ftp://hooks.example.com/x", "scheme (ftp)"),
        ("https://127.0.0.1/x", "loopback"),
        ("https://[::1]/x", "loopback"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://10.1.2.3/x", "private"),
        ("https://192.168.0.1/x", "private"),
        ("https://[::ffff:127.0.0.1]/x", "loopback"),
        ("https://0.0.0.0/x", "receives nothing"),
        ("https://224.0.0.1/x", "receives nothing"),
        ("https://user:pw@hooks.example.com/x", "user name or password"),
        ("hooks.example.com/x", "no scheme"),
        ("https:///x", "no host"),
        ("https://hooks.example.com/a b", "spaces"),
    ],
)
def test_refused_urls_name_the_problem_and_never_the_path(url: str, words: str):
    with pytest.raises(UrlRefused) as refused:
        check_url(url + SECRET_PATH, STRICT)
    assert words in str(refused.value)
    assert "s3cr3t" not in str(refused.value) and "pw" not in str(refused.value).split()


@pytest.mark.parametrize("url", ["", "   "])
def test_an_empty_url_is_refused(url: str):
    with pytest.raises(UrlRefused, match="empty"):
        check_url(url, STRICT)


def test_allowed_networks_open_a_private_network_but_never_link_local_or_the_api_server():
    policy = WebhookPolicy(
        allowed_networks=parse_networks("10.0.0.0/8, 127.0.0.0/8"),
        api_server=frozenset({(ipaddress.ip_address("10.96.0.1"), 443)}),
    )
    assert check_url("https://10.1.2.3/x", policy).host == "10.1.2.3"
    assert check_url("https://10.96.0.1:8443/x", policy).port == 8443
    with pytest.raises(UrlRefused, match="API server"):
        check_url("https://10.96.0.1/x", policy)
    with pytest.raises(UrlRefused, match="link-local"):
        check_url("https://169.254.169.254/x", policy)


def test_bad_networks_are_named():
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33'"):
        parse_networks("10.0.0.0/8,10.0.0.0/33")


@given(st.text(max_size=300))
def test_any_text_either_passes_or_is_refused_with_the_policy_error(text: str):
    try:
        target = check_url(text, STRICT)
    except UrlRefused:
        return
    assert target.scheme == "https" and target.host


@pytest.fixture
async def receiver():
    """An aiohttp receiver on loopback: what it got, and its base URL."""
    got: list[tuple[str, object]] = []

    async def hook(request: web.Request) -> web.Response:
        got.append((request.path, await request.json()))
        return web.Response(status=200, text="ok" * 10_000)

    async def moved(request: web.Request) -> web.Response:
        got.append((request.path, None))
        raise web.HTTPFound("/hook")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1.5)
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/moved", moved)
    app.router.add_post("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield got, port
    await runner.cleanup()


async def test_a_notice_reaches_an_allowed_receiver_and_no_redirect_is_followed(receiver):
    got, port = receiver
    http = WebhookHttp(LOOPBACK)
    try:
        assert await http.post(f"http://127.0.0.1:{port}/hook", {"type": "x"}) == 200
        assert await http.post(f"http://127.0.0.1:{port}/moved", {"type": "y"}) == 302
    finally:
        await http.close()
    assert got == [("/hook", {"type": "x"}), ("/moved", None)]


async def refused(policy: WebhookPolicy, url: str) -> str:
    """Why the edge refused to POST to `url` (the test fails if it did not)."""
    http = WebhookHttp(policy)
    try:
        with pytest.raises(UrlRefused) as refusal:
            await http.post(url, {"type": "x"})
    finally:
        await http.close()
    return str(refusal.value)


async def test_a_name_resolving_to_a_forbidden_address_is_refused_at_connect_time(receiver):
    # `localhost` passes the URL check (a name); its address is refused once resolved, as a
    # rebinding name would be: no request reaches the receiver.
    got, port = receiver
    strict_http = WebhookPolicy(allow_http=True)
    assert "loopback" in await refused(strict_http, f"http://localhost:{port}/hook")
    assert "loopback" in await refused(strict_http, f"http://127.0.0.1:{port}/hook")
    assert got == []


async def test_the_api_server_is_refused_even_inside_an_allowed_network(receiver):
    got, port = receiver
    endpoints = await api_server_endpoints([f"https://localhost:{port}"], environ={})
    policy = dataclasses.replace(LOOPBACK, api_server=endpoints)
    assert "API server" in await refused(policy, f"http://localhost:{port}/hook")
    assert got == []


async def test_a_slow_receiver_times_out_and_a_replica_not_leading_sends_nothing(receiver):
    got, port = receiver
    http = WebhookHttp(LOOPBACK, timeout=dt.timedelta(seconds=0.5))
    follower = WebhookHttp(LOOPBACK, may_send=lambda: 0.0)
    try:
        with pytest.raises(WebhookError, match="did not answer"):
            await http.post(f"http://127.0.0.1:{port}/slow", {})
        with pytest.raises(WebhookError, match="not the leader"):
            await follower.post(f"http://127.0.0.1:{port}/hook", {})
    finally:
        await http.close()
        await follower.close()
    assert got == []
