"""The operator's edge to Google: OAuth token, revoke, userinfo and Business Profile calls.

Async (aiohttp) so a slow Google never blocks the event loop. Errors are classified by the
pure functions of `google_types` into what the operator does next. No message built here
ever contains a token, a code or a client secret.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import aiohttp

from .google_types import (
    ApiError,
    ClientCredentials,
    ErrorKind,
    GoogleError,
    TokenResponse,
    Userinfo,
    classify_token_error,
    clean,
    error_subtype,
    grant_lifetime_from_response,
    parse_retry_after,
    refresh_token_from_response,
    token_from_response,
    userinfo_from_response,
)
from .settings import GoogleEndpoints

# What Google's revoke endpoint answers (400) for a token that is already revoked or expired.
ALREADY_REVOKED = frozenset({"invalid_token", "invalid_grant"})


class GoogleHttp:
    """One aiohttp session for all calls to Google; create once per process."""

    def __init__(self, endpoints: GoogleEndpoints, timeout: dt.timedelta) -> None:
        self._endpoints = endpoints
        self._timeout = aiohttp.ClientTimeout(total=timeout.total_seconds())
        self._session: aiohttp.ClientSession | None = None

    @property
    def endpoints(self) -> GoogleEndpoints:
        return self._endpoints

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def refresh(
        self, credentials: ClientCredentials, refresh_token: str, scopes: tuple[str, ...]
    ) -> TokenResponse:
        return await self._token_call(
            {
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": credentials.client_id,
                "client_secret": credentials.client_secret,
            },
            scopes,
        )

    async def exchange_code(
        self,
        credentials: ClientCredentials,
        code: str,
        code_verifier: str,
        redirect_uri: str,
        scopes: tuple[str, ...],
    ) -> TokenResponse:
        return await self._token_call(
            {
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": code_verifier,
                "redirect_uri": redirect_uri,
                "client_id": credentials.client_id,
                "client_secret": credentials.client_secret,
            },
            scopes,
        )

    async def _token_call(self, form: Mapping[str, str], scopes: tuple[str, ...]) -> TokenResponse:
        now = dt.datetime.now(dt.UTC)
        try:
            async with self._http().post(self._endpoints.token_uri, data=dict(form)) as response:
                body = await _json_body(response)
                if response.status != 200:
                    raise GoogleError(
                        kind=classify_token_error(response.status, body),
                        status=response.status,
                        error=clean(str(body.get("error", "unknown_error")), 80),
                        description=clean(str(body.get("error_description", ""))),
                        retry_after=parse_retry_after(response.headers.get("Retry-After"), now),
                        subtype=error_subtype(body),
                    )
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _network_error(error) from None
        return TokenResponse(
            access=token_from_response(body, scopes, now),
            refresh_token=refresh_token_from_response(body),
            grant_lifetime=grant_lifetime_from_response(body),
        )

    async def revoke(self, token: str) -> bool:
        """Revoke a grant. False when Google says the token is already invalid (revoked or
        expired): there is nothing left to revoke. Raises GoogleError otherwise."""
        try:
            async with self._http().post(
                self._endpoints.revoke_uri, data={"token": token}
            ) as response:
                body = await _json_body(response)
                if response.status == 200:
                    return True
                error = clean(str(body.get("error", "revoke_failed")), 80)
                if response.status == 400 and error in ALREADY_REVOKED:
                    return False
                raise GoogleError(
                    classify_token_error(response.status, body),
                    response.status,
                    error,
                    clean(str(body.get("error_description", ""))),
                    retry_after=parse_retry_after(
                        response.headers.get("Retry-After"), dt.datetime.now(dt.UTC)
                    ),
                )
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _network_error(error) from None

    async def userinfo(self, access_token: str) -> Userinfo:
        body = await self._api_get(self._endpoints.userinfo_uri, access_token, {})
        return userinfo_from_response(body)

    async def get_location(self, access_token: str, location_id: str) -> dict[str, Any]:
        url = f"{self._endpoints.business_info_api}/v1/locations/{location_id}"
        return await self._api_get(url, access_token, {"readMask": "name,title"})

    async def _api_get(
        self, url: str, access_token: str, params: Mapping[str, str]
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {access_token}"}
        try:
            async with self._http().get(url, params=dict(params), headers=headers) as response:
                body = await _json_body(response)
                if response.status != 200:
                    error = body.get("error", {})
                    error = error if isinstance(error, dict) else {"status": str(error)}
                    raise ApiError(
                        response.status,
                        clean(str(error.get("status", "UNKNOWN")), 40),
                        clean(str(error.get("message", ""))),
                    )
                return body
        except (aiohttp.ClientError, TimeoutError) as error:
            raise ApiError(0, "UNAVAILABLE", type(error).__name__) from None


async def _json_body(response: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        return {}
    return body if isinstance(body, dict) else {}


def _network_error(error: BaseException) -> GoogleError:
    # The exception text may include the URL but never the form body with the secrets.
    return GoogleError(ErrorKind.RETRYABLE, 0, "network_error", type(error).__name__)
