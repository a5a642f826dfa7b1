"""The sandbox's aiohttp application: Google's endpoints as thin handlers over SandboxState."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import unquote

from aiohttp import BasicAuth, hdrs, web

from . import (
    AUTH_PATH,
    CERTS_PATH,
    CONSENT_PATH,
    CONTROL_PREFIX,
    REVOKE_PATH,
    TOKEN_PATH,
    TOKENINFO_PATH,
    USERINFO_PATH,
    control,
    pages,
)
from .business import API_OF_ENDPOINT
from .errors import ApiError, AuthorizationError, OAuthError
from .state import ROUTE_ENDPOINTS, Redirect, SandboxState

STATE = web.AppKey("state", SandboxState)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Token answers must never be cached by anything in between (RFC 6749, 5.1).
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def create_app(state: SandboxState) -> web.Application:
    app = web.Application(middlewares=[_answer_errors, _count_and_inject_faults])
    app[STATE] = state
    router = app.router
    router.add_get(AUTH_PATH, _authorize, name="auth")
    router.add_post(CONSENT_PATH, _consent, name="consent")
    router.add_post(TOKEN_PATH, _token, name="token")
    router.add_post(REVOKE_PATH, _revoke, name="revoke")
    router.add_get(USERINFO_PATH, _userinfo, name="userinfo")
    router.add_get(TOKENINFO_PATH, _tokeninfo, name="tokeninfo")
    router.add_get(CERTS_PATH, _certs, name="certs")
    router.add_get("/v1/accounts", _list_accounts, name="accounts.list")
    router.add_get("/v1/accounts/{account_id}/locations", _list_locations, name="locations.list")
    router.add_get("/v1/locations/{location_id}", _get_location, name="locations.get")
    router.add_get(
        "/v4/accounts/{account_id}/locations/{location_id}/reviews",
        _list_reviews,
        name="reviews.list",
    )
    control.add_routes(router, STATE)
    return app


@web.middleware
async def _answer_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render the errors handlers raise in the shape Google uses on that endpoint."""
    try:
        return await handler(request)
    except OAuthError as error:
        return web.json_response(error.body(), status=error.status, headers=error.headers)
    except ApiError as error:
        return web.json_response(error.body(), status=error.code, headers=error.headers)
    except AuthorizationError as error:
        return web.Response(
            text=pages.error_page(error), status=400, content_type="text/html", charset="utf-8"
        )
    except (ValueError, KeyError) as error:
        if not request.path.startswith(CONTROL_PREFIX + "/"):
            raise
        status = 404 if isinstance(error, KeyError) else 400
        # args[0], not str(): str() of a KeyError is the repr of its message.
        message = str(error.args[0]) if error.args else type(error).__name__
        return web.json_response({"error": message}, status=status)


@web.middleware
async def _count_and_inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count each call of a Google endpoint, and make it fail if a fault is pending."""
    endpoint = request.match_info.route.name
    if endpoint not in ROUTE_ENDPOINTS:
        return await handler(request)
    form = await _form(request) if endpoint in ("token", "revoke") else {}
    # The refresh token of a refresh, or the token a revoke names (form or query).
    token = form.get("refresh_token") or form.get("token") or request.query.get("token", "")
    fault = request.app[STATE].record_call(
        endpoint, form.get("grant_type"), form.get("client_id", ""), token
    )
    if fault is None:
        return await handler(request)
    if fault.status == 200 and fault.answer is not None:
        return await _tampered(await handler(request), fault.answer)
    if fault.status == 0:
        # A network failure: the client sees the connection close without an answer.
        if request.transport is not None:
            request.transport.abort()
        raise web.HTTPServiceUnavailable()  # never reaches the client
    if endpoint in API_OF_ENDPOINT:
        raise fault.api_error(API_OF_ENDPOINT[endpoint].service)
    raise fault.oauth_error()


async def _tampered(response: web.StreamResponse, fields: Mapping[str, Any]) -> web.StreamResponse:
    """The answer Google would give, with `fields` put over it (JSON answers only)."""
    if not isinstance(response, web.Response) or response.status != 200 or response.body is None:
        return response
    body = json.loads(bytes(response.body))  # type: ignore[arg-type]
    return web.json_response({**body, **fields}, headers={"Cache-Control": "no-store"})


async def _authorize(request: web.Request) -> web.StreamResponse:
    outcome = request.app[STATE].start_authorization(request.query)
    if isinstance(outcome, Redirect):
        raise web.HTTPFound(outcome.location)
    return web.Response(
        text=pages.consent_page(outcome),
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-store"},
    )


async def _consent(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    # Each ticked scope checkbox sends one `scope` field.
    ticked = [
        value for value in (await request.post()).getall("scope", []) if isinstance(value, str)
    ]
    redirect = request.app[STATE].finish_consent(
        form.get("request_id", ""),
        allow=form.get("decision") == "allow",
        email=form.get("email"),
        ticked=ticked,
    )
    raise web.HTTPFound(redirect.location)


async def _token(request: web.Request) -> web.StreamResponse:
    answer = request.app[STATE].token(await _form(request), _basic_auth(request))
    return web.json_response(answer, headers=_NO_STORE)


async def _revoke(request: web.Request) -> web.StreamResponse:
    # Google takes the token from the form or, as its docs show, from the query.
    token = (await _form(request)).get("token") or request.query.get("token", "")
    request.app[STATE].revoke(token)
    return web.json_response({})


async def _userinfo(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[STATE].userinfo(request.headers.get(hdrs.AUTHORIZATION)))


async def _tokeninfo(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[STATE].tokeninfo(request.query.get("access_token", "")))


async def _certs(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[STATE].id_token_certs())


async def _list_accounts(request: web.Request) -> web.StreamResponse:
    caller = _api_caller(request)
    return web.json_response(request.app[STATE].business.list_accounts(caller, request.query))


async def _list_locations(request: web.Request) -> web.StreamResponse:
    caller = _api_caller(request)
    account_id = request.match_info["account_id"]
    return web.json_response(
        request.app[STATE].business.list_locations(caller, account_id, request.query)
    )


async def _get_location(request: web.Request) -> web.StreamResponse:
    caller = _api_caller(request)
    location_id = request.match_info["location_id"]
    return web.json_response(
        request.app[STATE].business.get_location(caller, location_id, request.query)
    )


async def _list_reviews(request: web.Request) -> web.StreamResponse:
    caller = _api_caller(request)
    account_id, location_id = request.match_info["account_id"], request.match_info["location_id"]
    return web.json_response(
        request.app[STATE].business.list_reviews(caller, account_id, location_id, request.query)
    )


def _api_caller(request: web.Request) -> str:
    """The e-mail of the account whose token authorizes this Business Profile call."""
    endpoint = request.match_info.route.name or ""
    return request.app[STATE].authorize_api_call(endpoint, request.headers.get(hdrs.AUTHORIZATION))


async def _form(request: web.Request) -> dict[str, str]:
    """The form fields (aiohttp caches the parsed body, so reading twice is free)."""
    return {name: value for name, value in (await request.post()).items() if isinstance(value, str)}


def _basic_auth(request: web.Request) -> tuple[str, str] | None:
    """Client credentials sent as HTTP Basic (requests-oauthlib's default), form-url-decoded."""
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    if not header.lower().startswith("basic "):
        return None
    try:
        credentials = BasicAuth.decode(header)
    except ValueError:
        raise OAuthError(401, "invalid_client", "Unauthorized") from None
    return unquote(credentials.login), unquote(credentials.password)
