"""The operator's edge to Google: OAuth token, revoke, userinfo and Business Profile calls.

Async (aiohttp) so a slow Google never blocks the event loop. Errors are classified by a
pure function into what the operator does next. No message built here ever contains a
token, a code or a client secret.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import enum
from collections.abc import Mapping
from typing import Any

import aiohttp

from .settings import GoogleEndpoints
from .tokens import AccessToken


class ErrorKind(enum.Enum):
    # The refresh token (or code) is dead: revoked, expired, reused. Only a new consent helps.
    INVALID_GRANT = "invalid_grant"
    # The OAuth client id/secret is wrong, or the token belongs to another client.
    INVALID_CLIENT = "invalid_client"
    # The redirect URI differs from the one registered or used at authorization.
    REDIRECT_URI_MISMATCH = "redirect_uri_mismatch"
    # Overload or network trouble: try again later.
    RETRYABLE = "retryable"
    # Anything else Google refuses; not retried automatically.
    OTHER = "other"


RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
RETRYABLE_ERRORS = frozenset({"server_error", "temporarily_unavailable", "internal_failure"})


@dataclasses.dataclass
class GoogleError(Exception):
    kind: ErrorKind
    status: int
    error: str
    description: str
    retry_after: dt.timedelta | None = None

    def __str__(self) -> str:
        # Google's error codes and descriptions never echo the secret values sent.
        detail = f"{self.error}: {self.description}" if self.description else self.error
        return f"HTTP {self.status} {detail}" if self.status else detail


def classify_token_error(status: int, body: Mapping[str, Any]) -> ErrorKind:
    """Map a token-endpoint failure (google-behaviour.md's table) to what to do about it."""
    error = str(body.get("error", ""))
    if status in RETRYABLE_STATUS or error in RETRYABLE_ERRORS:
        return ErrorKind.RETRYABLE
    if error == "invalid_grant":
        return ErrorKind.INVALID_GRANT
    if error in ("invalid_client", "unauthorized_client") or status == 401:
        return ErrorKind.INVALID_CLIENT
    if error == "redirect_uri_mismatch":
        return ErrorKind.REDIRECT_URI_MISMATCH
    return ErrorKind.OTHER


def parse_retry_after(value: str | None, now: dt.datetime) -> dt.timedelta | None:
    """Retry-After is either seconds or an HTTP date."""
    if not value:
        return None
    if value.strip().isdigit():
        return dt.timedelta(seconds=int(value.strip()))
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(moment - now, dt.timedelta(0))


def token_from_response(
    body: Mapping[str, Any], requested_scopes: tuple[str, ...], now: dt.datetime
) -> AccessToken:
    """An AccessToken from a token-endpoint answer; Google may list scopes in any order."""
    scopes = tuple(sorted(str(body.get("scope", "")).split())) or tuple(sorted(requested_scopes))
    return AccessToken(
        value=str(body["access_token"]),
        token_type=str(body.get("token_type") or "Bearer"),
        scopes=scopes,
        issued_at=now.replace(microsecond=0),
        expires_at=now.replace(microsecond=0) + dt.timedelta(seconds=int(body["expires_in"])),
    )


@dataclasses.dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    client_secret: str


@dataclasses.dataclass(frozen=True)
class TokenResponse:
    access: AccessToken
    refresh_token: str | None
    id_token: str | None


@dataclasses.dataclass
class ApiError(Exception):
    """A Business Profile API error in Google's common shape."""

    status: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"HTTP {self.status} {self.code}: {self.message}"


class GoogleClient:
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
                        error=str(body.get("error", "unknown_error")),
                        description=str(body.get("error_description", "")),
                        retry_after=parse_retry_after(response.headers.get("Retry-After"), now),
                    )
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _network_error(error) from None
        if "access_token" not in body or "expires_in" not in body:
            raise GoogleError(ErrorKind.OTHER, 200, "malformed_response", "no access_token")
        return TokenResponse(
            access=token_from_response(body, scopes, now),
            refresh_token=body.get("refresh_token") or None,
            id_token=body.get("id_token") or None,
        )

    async def revoke(self, token: str) -> None:
        try:
            async with self._http().post(
                self._endpoints.revoke_uri, data={"token": token}
            ) as response:
                body = await _json_body(response)
                if response.status != 200:
                    kind = classify_token_error(response.status, body)
                    raise GoogleError(
                        kind, response.status, str(body.get("error", "revoke_failed")), ""
                    )
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _network_error(error) from None

    async def userinfo_email(self, access_token: str) -> str:
        body = await self._api_get(self._endpoints.userinfo_uri, access_token, {})
        return str(body.get("email", ""))

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
                        str(error.get("status", "UNKNOWN")),
                        str(error.get("message", "")),
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
