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

from .timeutil import is_ascii_number
from .tokens import MAX_LIFETIME, AccessToken


class ErrorKind(enum.Enum):
    # The refresh token (or code) is dead: revoked, expired, reused. Only a new consent helps.
    INVALID_GRANT = "invalid_grant"
    # The OAuth client id/secret is wrong, or the token belongs to another client.
    INVALID_CLIENT = "invalid_client"
    # The redirect URI differs from the one registered or used at authorization.
    REDIRECT_URI_MISMATCH = "redirect_uri_mismatch"
    # Overload or network trouble: try again later.
    RETRYABLE = "retryable"
    # Google answered 200 with something unusable (no token, a nonsensical lifetime): try
    # again later, as for overload, and say so.
    INVALID_ANSWER = "invalid_answer"
    # Anything else Google refuses; not retried automatically.
    OTHER = "other"


RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
RETRYABLE_ERRORS = frozenset({"server_error", "temporarily_unavailable", "internal_failure"})
# invalid_grant subtypes of Google Cloud session control: re-authentication is due.
REAUTHENTICATION_SUBTYPES = frozenset({"invalid_rapt", "rapt_required"})


@dataclasses.dataclass
class GoogleError(Exception):
    kind: ErrorKind
    status: int
    error: str
    description: str
    retry_after: dt.timedelta | None = None
    # Google's `error_subtype` (e.g. invalid_rapt), cleaned and bounded; empty when absent.
    subtype: str = ""

    @property
    def needs_reauthentication(self) -> bool:
        """Workspace session control wants the person to sign in again (a new consent)."""
        return self.kind is ErrorKind.INVALID_GRANT and self.subtype in REAUTHENTICATION_SUBTYPES

    def __str__(self) -> str:
        # Google's error codes and descriptions never echo the secret values sent; they are
        # bounded and made printable all the same (they end up in conditions and logs).
        detail = f"{self.error} ({self.subtype})" if self.subtype else self.error
        detail = f"{detail}: {self.description}" if self.description else detail
        detail = clean(detail)
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


# Retry-After is honoured up to this: a server asking for hours must not outlast the token.
MAX_RETRY_AFTER = dt.timedelta(minutes=10)
# Google's access tokens live 3599 s. Anything outside these bounds (MAX_LIFETIME: tokens.py)
# is not a token lifetime (0 or negative would refresh in a loop; years would never refresh).
MIN_LIFETIME = dt.timedelta(seconds=5)
MAX_TOKEN_LENGTH = 4096
MAX_TEXT = 300  # of any text from Google shown in a condition or a log line


def parse_retry_after(value: str | None, now: dt.datetime) -> dt.timedelta | None:
    """Retry-After is either seconds or an HTTP date; anything else is ignored, and what it
    asks for is capped at MAX_RETRY_AFTER."""
    if not value or len(value) > 64:
        return None
    text = value.strip()
    delay: dt.timedelta | None
    if is_ascii_number(text):
        delay = dt.timedelta(seconds=min(int(text), int(MAX_RETRY_AFTER.total_seconds())))
    else:
        try:
            moment = email.utils.parsedate_to_datetime(text)
            delay = max(moment - now, dt.timedelta(0))
        except (TypeError, ValueError, OverflowError):
            return None
    return min(delay, MAX_RETRY_AFTER)


def token_from_response(
    body: Mapping[str, Any], requested_scopes: tuple[str, ...], now: dt.datetime
) -> AccessToken:
    """An AccessToken from a token-endpoint answer, or GoogleError(INVALID_ANSWER) naming the
    field that is unusable. Google may list scopes in any order."""
    value = body.get("access_token")
    if not isinstance(value, str) or not value or len(value) > MAX_TOKEN_LENGTH:
        raise invalid_answer("access_token is missing, empty or not a string")
    if not value.isascii() or not value.isprintable() or " " in value:
        raise invalid_answer("access_token holds characters a token cannot have")
    lifetime = body.get("expires_in")
    if isinstance(lifetime, str) and is_ascii_number(lifetime):
        lifetime = int(lifetime)
    if (
        not isinstance(lifetime, int)
        or isinstance(lifetime, bool)
        or not MIN_LIFETIME.total_seconds() <= lifetime <= MAX_LIFETIME.total_seconds()
    ):
        raise invalid_answer(
            f"expires_in={clean(repr(lifetime), 40)} is not a whole number of seconds between "
            f"{int(MIN_LIFETIME.total_seconds())} and {int(MAX_LIFETIME.total_seconds())}"
        )
    token_type = body.get("token_type") or "Bearer"
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise invalid_answer(f"token_type={clean(repr(token_type), 40)} is not Bearer")
    scope = body.get("scope") or ""
    if not isinstance(scope, str):
        raise invalid_answer("scope is not a string")
    scopes = tuple(sorted(scope.split())) or tuple(sorted(requested_scopes))
    issued = now.replace(microsecond=0)
    return AccessToken(
        value=value,
        token_type="Bearer",  # noqa: S106 - the scheme's name, not a secret
        scopes=scopes,
        issued_at=issued,
        expires_at=issued + dt.timedelta(seconds=lifetime),
    )


# A time-limited grant never lasts longer than this; a larger `refresh_token_expires_in` is
# clamped to it (Google offers hours to months; ten years is no limit a person chose).
MAX_GRANT_LIFETIME = dt.timedelta(days=3650)


def grant_lifetime_from_response(body: Mapping[str, Any]) -> dt.timedelta | None:
    """How long the grant lasts from now (`refresh_token_expires_in`, time-limited access);
    None when the answer does not say (the grant does not end on its own) or says it in a
    form that is not a number of seconds. Clamped to 0..MAX_GRANT_LIFETIME."""
    value = body.get("refresh_token_expires_in")
    if isinstance(value, str) and len(value) <= 20 and is_ascii_number(value.strip()):
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    seconds = min(max(value, 0), int(MAX_GRANT_LIFETIME.total_seconds()))
    return dt.timedelta(seconds=seconds)


def error_subtype(body: Mapping[str, Any]) -> str:
    """Google's `error_subtype` of a token-endpoint error: cleaned, bounded, one word."""
    value = body.get("error_subtype")
    if not isinstance(value, str):
        return ""
    return clean(value.strip(), 60).replace(" ", "_")


def refresh_token_from_response(body: Mapping[str, Any]) -> str | None:
    """A refresh token if the answer carries one (Google sends it with a consent only)."""
    value = body.get("refresh_token")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_TOKEN_LENGTH or not value.isprintable():
        raise invalid_answer("refresh_token is not a usable string")
    return value


def invalid_answer(problem: str) -> GoogleError:
    return GoogleError(ErrorKind.INVALID_ANSWER, 200, "invalid_answer", problem)


def clean(text: str, limit: int = MAX_TEXT) -> str:
    """Text from Google, safe for a condition or a log line: printable, bounded."""
    printable = "".join(ch if ch.isprintable() else " " for ch in text)
    return printable if len(printable) <= limit else printable[: limit - 1] + "…"


@dataclasses.dataclass(frozen=True)
class Userinfo:
    """Who consented, as Google's userinfo endpoint says (empty when it did not say)."""

    email: str
    email_verified: bool
    hosted_domain: str


def userinfo_from_response(body: Mapping[str, Any]) -> Userinfo:
    email_address = body.get("email")
    if not isinstance(email_address, str) or not _looks_like_email(email_address):
        email_address = ""
    domain = body.get("hd")
    return Userinfo(
        email=email_address.lower(),
        email_verified=body.get("email_verified") in (True, "true"),
        hosted_domain=domain.lower() if isinstance(domain, str) and len(domain) <= 253 else "",
    )


def _looks_like_email(text: str) -> bool:
    local, at, domain = text.partition("@")
    return (
        bool(local and at and domain)
        and len(text) <= 320
        and "@" not in domain
        and text.isprintable()
        and not any(ch.isspace() for ch in text)
    )


def location_title(body: Mapping[str, Any]) -> str:
    """A location's title from Business Profile, bounded (it is shown in status)."""
    title = body.get("title")
    return clean(title, 200) if isinstance(title, str) else ""


@dataclasses.dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    client_secret: str


@dataclasses.dataclass(frozen=True)
class TokenResponse:
    access: AccessToken
    refresh_token: str | None
    # How long the grant lasts from the answer (time-limited access); None: no end.
    grant_lifetime: dt.timedelta | None = None


@dataclasses.dataclass
class ApiError(Exception):
    """A Business Profile API error in Google's common shape."""

    status: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"HTTP {self.status} {self.code}: {self.message}"
