"""Serving the sandbox: in the foreground (the CLI) or on a background thread (tests, demo)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .. import serving
from ..serving import base_url as base_url
from . import sandbox_environment
from .app import create_app
from .state import SandboxState


async def serve(
    state: SandboxState,
    host: str,
    port: int,
    *,
    stop: asyncio.Event,
    on_ready: Callable[[str], None],
) -> None:
    """Serve until `stop` is set; `on_ready` gets the base URL once the port is bound."""
    await serving.serve(create_app(state), host, port, stop=stop, on_ready=on_ready)


class SandboxServer(serving.BackgroundServer):
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
        super().__init__(
            lambda: create_app(self.state), host=host, port=port, thread_name="sandbox-google"
        )

    @property
    def env(self) -> dict[str, str]:
        """The GOOGLE_* settings that point the operator at this sandbox."""
        return sandbox_environment(self.url)
