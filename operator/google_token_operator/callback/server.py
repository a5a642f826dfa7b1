"""The callback on a background thread with its own event loop (tests, demo)."""

from __future__ import annotations

from ..serving import BackgroundServer
from . import CALLBACK_PATH
from .app import create_app


class CallbackServer(BackgroundServer):
    """The consent callback, handing what Google sends to the consent API at `operator_url`::

    with CallbackServer(operator_url) as callback:
        redirect_uri = callback.callback_url
    """

    def __init__(self, operator_url: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.operator_url = operator_url
        super().__init__(
            lambda: create_app(operator_url), host=host, port=port, thread_name="consent-callback"
        )

    @property
    def callback_url(self) -> str:
        """The redirect URI to register for this server."""
        return self.url + CALLBACK_PATH
