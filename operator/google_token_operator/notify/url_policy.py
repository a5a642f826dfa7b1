"""Which webhook URLs and which addresses the operator may send a notice to (pure).

A webhook URL comes from a tenant's Secret: it could point the operator at its own API server,
at a cloud metadata endpoint or at anything on the pod network (server-side request forgery).
The URL is checked here before any request; every address its host resolves to is checked again
at connect time (webhook_http.py), so a name that resolves to a safe address when checked and to
a forbidden one when connected (DNS rebinding) is refused too.

The URL is a credential (a Slack webhook's path is its secret): no message built here shows more
of it than its scheme and host."""

from __future__ import annotations

import dataclasses
import ipaddress
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048


class UrlRefused(ValueError):
    """A webhook URL or address the operator will not send to; the message says why and what
    to change, and shows at most the URL's scheme and host."""


@dataclasses.dataclass(frozen=True)
class WebhookPolicy:
    """Where notices may go."""

    # http:// as well as https:// (a receiver inside a trusted network, the tests).
    allow_http: bool = False
    # Private (and, when listed, loopback or link-local) networks that receivers may live in.
    allowed_networks: tuple[Network, ...] = ()
    # The API server's (address, port) pairs: never a receiver, whatever else is allowed.
    api_server: frozenset[tuple[Address, int]] = frozenset()


@dataclasses.dataclass(frozen=True)
class WebhookTarget:
    """A URL that passed the checks that need no DNS."""

    url: str
    scheme: str
    host: str
    port: int

    @property
    def shown(self) -> str:
        """What of the URL a message, an Event or a log may show."""
        return f"{self.scheme}://{self.host}"


def parse_networks(text: str) -> tuple[Network, ...]:
    """A comma list of CIDRs (`10.0.0.0/8, fd00::/8`); ValueError naming the bad one."""
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item[:60]!r} is not a network such as 10.0.0.0/8") from None
    return tuple(networks)


def check_url(url: str, policy: WebhookPolicy) -> WebhookTarget:
    """The target of `url`, or UrlRefused. A literal address is checked here; a name is checked
    once resolved (`check_address`)."""
    if not isinstance(url, str) or not url.strip():
        raise UrlRefused("the webhook URL is empty; put an https:// URL in the Secret")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH or any(ord(char) < 0x21 for char in url):
        raise UrlRefused("the webhook URL is too long or holds spaces or control characters")
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        raise UrlRefused(
            "the webhook URL cannot be parsed; put an https:// URL in the Secret"
        ) from None
    scheme = parts.scheme.lower()
    allowed_schemes = ("https", "http") if policy.allow_http else ("https",)
    if scheme not in allowed_schemes:
        shown = scheme[:10] or "no scheme"
        hint = "" if policy.allow_http else " (http:// only where NOTIFY_ALLOW_HTTP=true)"
        raise UrlRefused(f"the webhook URL's scheme ({shown}) is not allowed: use https://{hint}")
    if not host:
        raise UrlRefused(f"the webhook URL has no host; put a {scheme}:// URL in the Secret")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused(
            f"the webhook URL {scheme}://{host} carries a user name or password before its "
            "host; the operator does not send those (put the credential in the path or query)"
        )
    target = WebhookTarget(url, scheme, host, port or (443 if scheme == "https" else 80))
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        return target
    check_address(literal, target.port, policy, target.shown)
    return target


def check_address(address: Address, port: int, policy: WebhookPolicy, shown: str) -> None:
    """UrlRefused when `address` (what `shown`'s host resolved to) may not receive a notice."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if (address, port) in policy.api_server:
        raise UrlRefused(f"the webhook URL {shown} is the Kubernetes API server; use another host")
    if address.is_unspecified or address.is_multicast:
        raise UrlRefused(f"the webhook URL {shown} resolves to {address}, which receives nothing")
    kind = _forbidden_kind(address)
    if kind and not any(address in network for network in policy.allowed_networks):
        raise UrlRefused(
            f"the webhook URL {shown} resolves to {address}, a {kind} address; use a public "
            "host, or list its network in NOTIFY_ALLOWED_NETWORKS"
        )


def _forbidden_kind(address: Address) -> str:
    """What kind of address a receiver may not have by default ("" for a public one)."""
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_private or address.is_reserved or not address.is_global:
        return "private"
    return ""
