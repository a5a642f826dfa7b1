"""Serving the sandbox: in the foreground (the CLI) or on a background thread (tests, demo)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import threading
from collections.abc import Callable
from types import TracebackType

from aiohttp import web

from . import sandbox_environment
from .app import create_app
from .state import SandboxState

# Open keep-alive connections must not hold a shutdown for aiohttp's default minute.
_SHUTDOWN_TIMEOUT = 2.0
_START_TIMEOUT = 10.0


async def serve(
    state: SandboxState,
    host: str,
    port: int,
    *,
    stop: asyncio.Event,
    on_ready: Callable[[str], None],
) -> None:
    """Serve until `stop` is set; `on_ready` gets the base URL once the port is bound."""
    # No access log: Google's query strings carry codes and tokens.
    runner = web.AppRunner(create_app(state), access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
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


class SandboxServer:
    """A sandbox on a background thread with its own event loop.

    Sync tests, async tests and subprocesses can all call it, and tests may read or change
    `state` at any time::

        with SandboxServer() as sandbox:
            os.environ.update(sandbox.env)
    """

    def __init__(
        self, state: SandboxState | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.state = state if state is not None else SandboxState()
        self.host = host
        self.port = port
        self.url = ""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    @property
    def env(self) -> dict[str, str]:
        """The GOOGLE_* settings that point the operator at this sandbox."""
        return sandbox_environment(self.url)

    def start(self) -> SandboxServer:
        """Start serving; returns once the port is bound (or raises why it could not be)."""
        if self._thread is not None:
            raise RuntimeError("the sandbox is already running")
        ready: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(ready),), name="sandbox-google", daemon=True
        )
        self._thread.start()
        try:
            self.url = ready.result(timeout=_START_TIMEOUT)
        except BaseException:
            self._thread.join(timeout=_START_TIMEOUT)
            self._thread = None
            raise
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to end; safe to call twice."""
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=_START_TIMEOUT + _SHUTDOWN_TIMEOUT)
        self._thread = None

    async def _serve(self, ready: concurrent.futures.Future[str]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await serve(
                self.state, self.host, self.port, stop=self._stop, on_ready=ready.set_result
            )
        except Exception as error:
            if ready.done():
                raise
            ready.set_exception(error)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
