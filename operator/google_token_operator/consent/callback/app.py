"""The callback's aiohttp application: Google's redirect in, the operator's answer as a page out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from ...consent_state.contract import (
    CALLBACK_PATH,
    CONSENT_API_PATH,
    HEALTHZ_PATH,
    ConsentAnswer,
    Outcome,
    parse_answer,
)
from . import pages
from .limits import AddressLimits, client_address

logger = logging.getLogger(__name__)

CONSENT_API_URL = web.AppKey("consent_api_url", str)
KEY_FILE_PATH = web.AppKey("key_file", Path)
OPERATOR_SESSION = web.AppKey("operator_session", aiohttp.ClientSession)
ADDRESS_LIMITS = web.AppKey("address_limits", AddressLimits)
TRUST_PROXY = web.AppKey("trust_proxy", bool)
# The consent API's refusals that mean "not now" (its consent answers come with 200): the code
# was not exchanged, so a reload of the page hands it over again.
BUSY_STATUSES = frozenset({429, 503})


class _Busy(Exception):
    """The consent API refused the hand-over for load."""


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


def create_app(
    operator_url: str,
    key_file: Path,
    *,
    trust_proxy: bool = False,
    limits: AddressLimits | None = None,
) -> web.Application:
    """The callback, handing what Google sends to the consent API under `operator_url`,
    authenticated with the key in `key_file` (read at each hand-over: it may be rotated).
    Client addresses come from the peer, or from X-Forwarded-For with `trust_proxy`."""
    app = web.Application()
    app[CONSENT_API_URL] = operator_url.rstrip("/") + CONSENT_API_PATH
    app[KEY_FILE_PATH] = key_file
    app[ADDRESS_LIMITS] = AddressLimits() if limits is None else limits
    app[TRUST_PROXY] = trust_proxy
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
    address = client_address(
        request.remote, request.headers.get("X-Forwarded-For", ""), request.app[TRUST_PROXY]
    )
    bucket = request.app[ADDRESS_LIMITS].charge(address)
    if bucket is None:
        return _html(pages.busy_page())
    page, garbage = await _complete(request)
    if not garbage:
        # Only made-up or missing states keep their charge: a person's consents never
        # exhaust their address's bucket.
        bucket.refund()
    return _html(page)


async def _complete(request: web.Request) -> tuple[pages.Page, bool]:
    """The page for the person, and whether what they sent was garbage (no state, or one the
    operator does not know)."""
    query = request.query
    state = query.get("state", "")
    if not state:
        return pages.missing_state_page(), True
    error = query.get("error") or None
    handover = {
        "state": state,
        # With an error Google sends no code; if one came anyway, it is not spent.
        "code": None if error else query.get("code") or None,
        "error": error,
        "scope": query.get("scope") or None,
    }
    try:
        answer = await _hand_to_operator(request.app, handover)
    except _Busy:
        return pages.busy_page(), False
    if answer is None:
        return pages.operator_unreachable_page(), False
    logger.info(
        "consent for GoogleClient %s: %s (%d)",
        answer.client or "(unknown)",
        answer.outcome,
        answer.status,
    )
    return pages.outcome_page(answer), answer.outcome is Outcome.INVALID_STATE


async def _hand_to_operator(app: web.Application, handover: dict[str, Any]) -> ConsentAnswer | None:
    """The operator's answer; None when it could not be reached or answered nonsense.
    Raises _Busy when it refused for load (then nothing was spent)."""
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
            if response.status in BUSY_STATUSES:
                # Its refusals for load come before anything is spent.
                logger.warning("the consent API refused a hand-over for now (%d)", response.status)
                raise _Busy()
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
    headers = {"Retry-After": str(page.retry_after)} if page.retry_after else None
    return web.Response(
        text=page.html,
        status=page.status,
        content_type="text/html",
        charset="utf-8",
        headers=headers,
    )
