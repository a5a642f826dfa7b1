"""The operator's edge to webhook receivers: one POST per notice attempt (aiohttp).

Every address a receiver's name resolves to is checked against the webhook policy when the
connection is made (a resolver that refuses forbidden addresses), not only when the URL was read:
a name that resolves elsewhere the second time (DNS rebinding) reaches nothing it should not.
No redirect is followed (a 3xx is a failed attempt), no proxy from the environment is used, the
answer's body is read only up to a small cap and dropped. Messages show the URL's host only."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import socket
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from .notify.url_policy import (
    Address,
    UrlRefused,
    WebhookPolicy,
    WebhookTarget,
    check_address,
    check_url,
)
from .settings import Settings

TIMEOUT = dt.timedelta(seconds=10)
# A receiver's answer matters only by its status; a little is read so the connection is reused.
MAX_ANSWER_BYTES = 4096


class WebhookError(Exception):
    """An attempt that reached no answer (connection refused, timeout); the message shows the
    URL's host only."""


class _CheckingResolver(AbstractResolver):
    """Resolves like aiohttp's default, then refuses if any address is forbidden."""

    def __init__(self, policy: WebhookPolicy) -> None:
        self._policy = policy
        self._inner = aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        for item in found:
            address = ipaddress.ip_address(item["host"].split("%", 1)[0])
            check_address(address, port, self._policy, host)
        return found

    async def close(self) -> None:
        await self._inner.close()


async def api_server_endpoints(
    servers: list[str], environ: Mapping[str, str] | None = None
) -> frozenset[tuple[Address, int]]:
    """The (address, port) pairs of the API server: the kubeconfig's server URLs and, in a
    pod, the kubernetes Service; a name that does not resolve adds nothing."""
    env = os.environ if environ is None else environ
    wanted: set[tuple[str, int]] = set()
    for server in servers:
        parts = urlsplit(server)
        if parts.hostname:
            wanted.add((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)))
    service_port = env.get("KUBERNETES_SERVICE_PORT", "443")
    if env.get("KUBERNETES_SERVICE_HOST"):
        number = int(service_port) if service_port.isdigit() else 443
        wanted.add((env["KUBERNETES_SERVICE_HOST"], number))
    loop = asyncio.get_running_loop()
    found: set[tuple[Address, int]] = set()
    for host, number in wanted:
        try:
            answers = await loop.getaddrinfo(host, number, type=socket.SOCK_STREAM)
        except OSError:
            continue
        for *_, sockaddr in answers:
            found.add((ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]), number))
    return frozenset(found)


async def policy_from_settings(settings: Settings, servers: list[str]) -> WebhookPolicy:
    return WebhookPolicy(
        allow_http=settings.notify_allow_http,
        allowed_networks=settings.notify_allowed_networks,
        api_server=await api_server_endpoints(servers),
    )


class WebhookHttp:
    """One aiohttp session for every webhook; create once per process. `may_send` is the
    leader's fence: a replica that may have lost its Lease sends nothing (the new leader
    will, and records it)."""

    def __init__(
        self,
        policy: WebhookPolicy,
        may_send: Callable[[], float] = lambda: 1.0,
        timeout: dt.timedelta = TIMEOUT,
    ) -> None:
        self.policy = policy
        self._may_send = may_send
        self._timeout = aiohttp.ClientTimeout(total=timeout.total_seconds())
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(resolver=_CheckingResolver(self.policy))
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, connector=connector, trust_env=False
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def check(self, url: str) -> WebhookTarget:
        """UrlRefused for a URL no request may go to (before any DNS)."""
        return check_url(url, self.policy)

    async def post(self, url: str, body: Mapping[str, Any]) -> int:
        """POST `body` as JSON; the answer's status. UrlRefused, WebhookError."""
        target = self.check(url)
        if self._may_send() <= 0:
            raise WebhookError(f"not sent to {target.shown}: this replica is not the leader")
        try:
            async with self._http().post(
                target.url, json=dict(body), allow_redirects=False
            ) as response:
                await response.content.read(MAX_ANSWER_BYTES)
                return response.status
        except UrlRefused:
            raise
        except TimeoutError:
            raise WebhookError(f"{target.shown} did not answer within the timeout") from None
        except aiohttp.ClientError as error:
            raise WebhookError(
                f"{target.shown} could not be reached ({type(error).__name__})"
            ) from None
