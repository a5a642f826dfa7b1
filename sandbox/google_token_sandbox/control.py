"""The control API under /_sandbox/: what tests and demos in other processes may change."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from . import CONTROL_PREFIX
from .state import SandboxState

# Errors: the app's middleware answers ValueError with 400 and KeyError (unknown client) with 404.


def add_routes(router: web.UrlDispatcher, key: web.AppKey[SandboxState]) -> None:
    """Add the control routes; each handler finds the state under `key`."""

    async def counts(request: web.Request) -> web.StreamResponse:
        return web.json_response(request.app[key].counts)

    async def reset_counts(request: web.Request) -> web.StreamResponse:
        request.app[key].reset_counts()
        return web.json_response({})

    async def inject_faults(request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        request.app[key].inject_faults(
            _string(body, "endpoint", default="token"),
            status=_integer(body, "status"),
            count=_integer(body, "count", default=1),
            retry_after=_optional_integer(body, "retry_after"),
            answer=_optional_object(body, "answer"),
            client_id=_string(body, "client_id", default=""),
        )
        return web.json_response({})

    async def revoke(request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        email = body.get("email")
        if email is not None and not isinstance(email, str):
            raise ValueError("email must be a string")
        revoked = request.app[key].revoke_grants(_string(body, "client_id"), email)
        return web.json_response({"revoked": revoked})

    async def register_client(request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        request.app[key].register_client(
            _string(body, "client_id"),
            _string(body, "client_secret"),
            _strings(body, "redirect_uris"),
            name=_string(body, "name", default="Sandbox App"),
            publishing_status=_string(body, "publishing_status", default="production"),
        )
        return web.json_response({})

    async def break_secret(request: web.Request) -> web.StreamResponse:
        request.app[key].break_client_secret(request.match_info["client_id"])
        return web.json_response({})

    async def restore_secret(request: web.Request) -> web.StreamResponse:
        request.app[key].restore_client_secret(request.match_info["client_id"])
        return web.json_response({})

    async def settings(request: web.Request) -> web.StreamResponse:
        request.app[key].apply_settings(await _json_object(request))
        return web.json_response({})

    async def mint_grant(request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        refresh_token = request.app[key].mint_grant(
            _string(body, "client_id"), _string(body, "email"), _strings(body, "scopes")
        )
        return web.json_response({"refresh_token": refresh_token})

    async def list_grants(request: web.Request) -> web.StreamResponse:
        client_id = request.query.get("client_id")
        if not client_id:
            raise ValueError("client_id is required (?client_id=...)")
        return web.json_response(request.app[key].grants(client_id))

    async def remove_scopes(request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        request.app[key].remove_scopes(
            _string(body, "client_id"), _string(body, "email"), _strings(body, "scopes")
        )
        return web.json_response({})

    async def require_reauth(request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        request.app[key].require_reauth(
            _string(body, "client_id"), _string(body, "email"), _string(body, "subtype")
        )
        return web.json_response({})

    prefix = CONTROL_PREFIX
    router.add_get(f"{prefix}/counts", counts)
    router.add_post(f"{prefix}/counts/reset", reset_counts)
    router.add_post(f"{prefix}/faults", inject_faults)
    router.add_post(f"{prefix}/revoke", revoke)
    router.add_post(f"{prefix}/clients", register_client)
    router.add_post(f"{prefix}/clients/{{client_id}}/break-secret", break_secret)
    router.add_post(f"{prefix}/clients/{{client_id}}/restore-secret", restore_secret)
    router.add_post(f"{prefix}/settings", settings)
    router.add_post(f"{prefix}/grants", mint_grant)
    router.add_get(f"{prefix}/grants", list_grants)
    router.add_post(f"{prefix}/grants/remove-scopes", remove_scopes)
    router.add_post(f"{prefix}/grants/require-reauth", require_reauth)


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise ValueError("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


_REQUIRED: Any = object()


def _optional_object(body: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    value = body.get(name)
    if value is not None and not isinstance(value, dict):
        raise ValueError(f"{name} must be an object of answer fields")
    return value


def _string(body: Mapping[str, Any], name: str, default: str = _REQUIRED) -> str:
    value = body.get(name, default)
    if value is _REQUIRED:
        raise ValueError(f"{name} is required")
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


def _integer(body: Mapping[str, Any], name: str, default: int = _REQUIRED) -> int:
    value = body.get(name, default)
    if value is _REQUIRED:
        raise ValueError(f"{name} is required")
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer")
    return value


def _optional_integer(body: Mapping[str, Any], name: str) -> int | None:
    return None if body.get(name) is None else _integer(body, name)


def _strings(body: Mapping[str, Any], name: str) -> list[str]:
    value = body.get(name)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{name} must be a list of strings")
    return value
