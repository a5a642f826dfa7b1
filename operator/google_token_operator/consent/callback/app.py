"""The callback's aiohttp application: Google's redirect in, the operator's answer as a page out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from ..contract import (
    CALLBACK_PATH,
    CONSENT_API_PATH,
    HEALTHZ_PATH,
    ConsentAnswer,
    parse_answer,
)
from . import pages

logger = logging.getLogger(__name__)

CONSENT_API_URL = web.AppKey("consent_api_url", str)
KEY_FILE_PATH = web.AppKey("key_file", Path)
OPERATOR_SESSION = web.AppKey("operator_session", aiohttp.ClientSession)

# Longer than the operator's own timeout for Google (30 s by default), so that when Google is
# slow the person sees the operator's explanation rather than ours.
OPERATOR_TIMEOUT = aiohttp.ClientTimeout(total=60)

# Every answer: never cached (it follows a one-time code), never leaks the URL (which carries
# the code) to another site, and loads nothing but its own inline style.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
}


def create_app(operator_url: str, key_file: Path) -> web.Application:
    """The callback, handing what Google sends to the consent API under `operator_url`,
    authenticated with the key in `key_file` (read at each hand-over: it may be rotated)."""
    app = web.Application()
    app[CONSENT_API_URL] = operator_url.rstrip("/") + CONSENT_API_PATH
    app[KEY_FILE_PATH] = key_file
    app.cleanup_ctx.append(_operator_session)
    app.on_response_prepare.append(_add_security_headers)
    app.router.add_get(CALLBACK_PATH, _callback)
    app.router.add_get(HEALTHZ_PATH, _healthz)
    return app


async def _operator_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(timeout=OPERATOR_TIMEOUT) as session:
        app[OPERATOR_SESSION] = session
        yield


async def _add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    # A signal rather than a middleware: it also covers aiohttp's own 404 and 405 answers.
    response.headers.update(SECURITY_HEADERS)


async def _callback(request: web.Request) -> web.Response:
    query = request.query
    state = query.get("state", "")
    if not state:
        return _html(pages.missing_state_page())
    error = query.get("error") or None
    handover = {
        "state": state,
        # With an error Google sends no code; if one came anyway, it is not spent.
        "code": None if error else query.get("code") or None,
        "error": error,
        "scope": query.get("scope") or None,
    }
    answer = await _hand_to_operator(request.app, handover)
    if answer is None:
        return _html(pages.operator_unreachable_page())
    logger.info(
        "consent for GoogleClient %s: %s (%d)",
        answer.client or "(unknown)",
        answer.outcome,
        answer.status,
    )
    return _html(pages.outcome_page(answer))


async def _hand_to_operator(app: web.Application, handover: dict[str, Any]) -> ConsentAnswer | None:
    """The operator's answer; None when it could not be reached or answered nonsense."""
    try:
        key = app[KEY_FILE_PATH].read_text().strip()
    except OSError as error:
        logger.error("the consent API key cannot be read from %s: %s", app[KEY_FILE_PATH], error)
        return None
    headers = {"Authorization": f"Bearer {key}"}
    try:
        async with app[OPERATOR_SESSION].post(
            app[CONSENT_API_URL], json=handover, headers=headers
        ) as response:
            # Whatever the HTTP status, the outcome is in the JSON body.
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        # The code travels in the body, never in the URL, so the error's text holds none.
        logger.warning(
            "the operator's consent API could not be reached: %s: %s", type(error).__name__, error
        )
        return None
    answer = parse_answer(body)
    if answer is None:
        logger.warning("the operator's consent API answered something else than a consent answer")
    return answer


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def _html(page: pages.Page) -> web.Response:
    return web.Response(
        text=page.html, status=page.status, content_type="text/html", charset="utf-8"
    )
