"""Serving an aiohttp application in the foreground until told to stop (the callback command)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable

from aiohttp import web

# Open keep-alive connections must not hold a shutdown for aiohttp's default minute.
SHUTDOWN_TIMEOUT = 2.0


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    stop: asyncio.Event,
    on_ready: Callable[[str], None],
) -> None:
    """Serve until `stop` is set; `on_ready` gets the base URL once the port is bound."""
    # No access log: OAuth query strings carry codes and tokens.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        on_ready(base_url(host, runner.addresses[0][1]))
        await stop.wait()
    finally:
        await runner.cleanup()


def base_url(host: str, port: int) -> str:
    """The URL clients use; a wildcard bind address is reached through loopback."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a host name such as localhost
        return f"http://{host}:{port}"
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    return f"http://[{address}]:{port}" if address.version == 6 else f"http://{address}:{port}"
