"""What Google sends and how the operator reads it: plain data, error types and their
classification (pure; the HTTP calls live in `google_http`). No message built here ever
contains a token, a code or a client secret."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import enum
from collections.abc import Mapping
from typing import Any

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
    """Map a token-endpoint failure (docs/google-behaviour.md, "Errors") to what to do."""
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


@dataclasses.dataclass
class ApiError(Exception):
    """A Business Profile API error in Google's common shape."""

    status: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"HTTP {self.status} {self.code}: {self.message}"
