"""aiohttp applications on a background thread with their own event loop (tests, demo).

Sync tests, async tests and a browser driven through Playwright's sync API can all talk to a
server started this way, and tests may read or change a sandbox's `state` at any time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Self

from aiohttp import web

from google_token_operator import serving
from google_token_operator.consent.callback.app import create_app as create_callback_app
from google_token_operator.consent_state.contract import CALLBACK_PATH
from google_token_sandbox import sandbox_environment
from google_token_sandbox.app import create_app as create_sandbox_app
from google_token_sandbox.state import SandboxState

from .lifecycle import StartStop

START_TIMEOUT = 10.0


class BackgroundServer(StartStop):
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
        self._thread.join(timeout=START_TIMEOUT + serving.SHUTDOWN_TIMEOUT)
        self._thread = None

    async def _serve(self, ready: concurrent.futures.Future[str]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await serving.serve(
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


class SandboxServer(BackgroundServer):
    """The sandbox Google on a background thread::

    with SandboxServer() as sandbox:
        os.environ.update(sandbox.env)
    """

    def __init__(
        self, state: SandboxState | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.state = state if state is not None else SandboxState()
        super().__init__(
            lambda: create_sandbox_app(self.state),
            host=host,
            port=port,
            thread_name="sandbox-google",
        )

    @property
    def env(self) -> dict[str, str]:
        """The GOOGLE_* settings that point the operator at this sandbox."""
        return sandbox_environment(self.url)


class CallbackServer(BackgroundServer):
    """The consent callback, handing what Google sends to the consent API at `operator_url`
    with the key in `key_file`::

    with CallbackServer(operator_url, key_file) as callback:
        redirect_uri = callback.callback_url
    """

    def __init__(
        self,
        operator_url: str,
        key_file: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        trust_proxy: bool = False,
    ) -> None:
        self.operator_url = operator_url
        super().__init__(
            lambda: create_callback_app(operator_url, key_file, trust_proxy=trust_proxy),
            host=host,
            port=port,
            thread_name="consent-callback",
        )

    @property
    def callback_url(self) -> str:
        """The redirect URI to register for this server."""
        return self.url + CALLBACK_PATH
