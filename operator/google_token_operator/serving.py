"""Serving an aiohttp application: in the foreground (a command) or on a background thread.

The sandbox Google and the consent callback are both served this way; tests run them on a
background thread with its own event loop, so sync tests, async tests and a browser driven
through Playwright's sync API can all talk to them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Self

from aiohttp import web

# Open keep-alive connections must not hold a shutdown for aiohttp's default minute.
SHUTDOWN_TIMEOUT = 2.0
START_TIMEOUT = 10.0


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


class BackgroundServer:
    """An aiohttp application on a background thread with its own event loop.

    `create_app` is called on that thread at each start (an application runs only once)::

        with BackgroundServer(create_app, thread_name="demo") as server:
            requests.get(server.url + "/healthz")
    """

    def __init__(
        self,
        create_app: Callable[[], web.Application],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        thread_name: str,
    ) -> None:
        self.host = host
        self.port = port
        self.url = ""
        self._create_app = create_app
        self._thread_name = thread_name
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def start(self) -> Self:
        """Start serving; returns once the port is bound (or raises why it could not be)."""
        if self._thread is not None:
            raise RuntimeError(f"{self._thread_name} is already running")
        ready: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(ready),), name=self._thread_name, daemon=True
        )
        self._thread.start()
        try:
            self.url = ready.result(timeout=START_TIMEOUT)
        except BaseException:
            self._thread.join(timeout=START_TIMEOUT)
            self._thread = None
            raise
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to end; safe to call twice."""
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=START_TIMEOUT + SHUTDOWN_TIMEOUT)
        self._thread = None

    async def _serve(self, ready: concurrent.futures.Future[str]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await serve(
                self._create_app(),
                self.host,
                self.port,
                stop=self._stop,
                on_ready=ready.set_result,
            )
        except Exception as error:
            if ready.done():
                raise
            ready.set_exception(error)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
