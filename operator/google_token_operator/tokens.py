"""The token record the operator keeps in each GoogleClient's private Secret (plain data).

The private Secret is the source of truth for a client's tokens: consumer Secrets are
derived from it, and after a restart the operator reads it instead of asking Google again.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from collections.abc import Mapping

from .timeutil import format_rfc3339, parse_rfc3339

# Google's access tokens live 3599 s; no token lives longer than this. Bounds what Google's
# answer may say, and what a private Secret may (a hand-edited expiry of year 9999 would
# otherwise be a token never refreshed).
MAX_LIFETIME = dt.timedelta(hours=24)


@dataclasses.dataclass(frozen=True)
class AccessToken:
    value: str
    token_type: str
    scopes: tuple[str, ...]
    issued_at: dt.datetime
    expires_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class TokenRecord:
    """Everything in the private Secret. `refresh_token` is empty once Google revoked it."""

    refresh_token: str
    client_id: str
    scopes: tuple[str, ...]
    account_email: str
    access: AccessToken | None
    # When the person consented (kept to tell a Testing app's 7-day end from other ends).
    consented_at: dt.datetime | None = None
    # When a time-limited grant ends (refresh_token_expires_in); None: it does not end.
    grant_expires_at: dt.datetime | None = None
    # The last refresh answer lacked these requested scopes: the grant is not used until a
    # new consent replaces it (its refresh token is kept for that).
    missing_scopes: tuple[str, ...] = ()
    # Google asked for re-authentication (invalid_rapt): the same, until a new consent.
    reauthentication_required: bool = False

    def with_access(self, access: AccessToken, refresh_token: str | None) -> TokenRecord:
        """After a refresh: Google does not rotate refresh tokens, but keep one if it does.

        The grant's scopes become the new token's: the private Secret stores one scope list,
        so a token read back from it equals the one held in memory.
        """
        return dataclasses.replace(
            self,
            access=access,
            refresh_token=refresh_token or self.refresh_token,
            scopes=access.scopes,
        )

    def revoked(self) -> TokenRecord:
        """The refresh token is dead; the access token stays usable until it expires."""
        return dataclasses.replace(self, refresh_token="")


def record_to_data(record: TokenRecord) -> dict[str, str]:
    """Private Secret `data` (base64) for a record."""
    plain = {
        "refresh_token": record.refresh_token,
        "client_id": record.client_id,
        "scopes": " ".join(record.scopes),
        "account_email": record.account_email,
    }
    if record.access is not None:
        plain |= {
            "access_token": record.access.value,
            "token_type": record.access.token_type,
            "issued_at": format_rfc3339(record.access.issued_at),
            "expiry": format_rfc3339(record.access.expires_at),
        }
    if record.consented_at is not None:
        plain["consented_at"] = format_rfc3339(record.consented_at)
    if record.grant_expires_at is not None:
        plain["grant_expires_at"] = format_rfc3339(record.grant_expires_at)
    if record.missing_scopes:
        plain["missing_scopes"] = " ".join(record.missing_scopes)
    if record.reauthentication_required:
        plain["reauthentication_required"] = "true"
    return encode_data(plain)


def record_from_data(data: Mapping[str, str] | None) -> TokenRecord | None:
    """Parse private Secret `data`; None when there is nothing usable in it.

    The Secret may have been edited by hand: an access token whose times cannot be read, that
    ends before it starts or lives longer than MAX_LIFETIME, is dropped (a refresh replaces
    it), never trusted. Times are clamped as parse_rfc3339 does.
    """
    plain = decode_data(data or {})
    if not plain.get("refresh_token") and not plain.get("access_token"):
        return None
    return TokenRecord(
        refresh_token=plain.get("refresh_token", "").strip(),
        client_id=plain.get("client_id", "").strip(),
        scopes=tuple(plain.get("scopes", "").split()),
        account_email=plain.get("account_email", "").strip(),
        access=_access_from(plain),
        consented_at=_moment(plain.get("consented_at")),
        grant_expires_at=_moment(plain.get("grant_expires_at")),
        missing_scopes=tuple(plain.get("missing_scopes", "").split()),
        reauthentication_required=plain.get("reauthentication_required") == "true",
    )


def _moment(text: str | None) -> dt.datetime | None:
    """A time the record keeps; an unreadable one counts as unknown."""
    if not text:
        return None
    try:
        return parse_rfc3339(text)
    except ValueError:
        return None


def _access_from(plain: Mapping[str, str]) -> AccessToken | None:
    value = plain.get("access_token", "").strip()
    if not value:
        return None
    try:
        issued_at = parse_rfc3339(plain.get("issued_at", ""))
        expires_at = parse_rfc3339(plain.get("expiry", ""))
    except ValueError:
        return None
    if not dt.timedelta(0) < expires_at - issued_at <= MAX_LIFETIME:
        return None
    return AccessToken(
        value=value,
        token_type=plain.get("token_type") or "Bearer",
        scopes=tuple(plain.get("scopes", "").split()),
        issued_at=issued_at,
        expires_at=expires_at,
    )


def encode_data(plain: Mapping[str, str]) -> dict[str, str]:
    return {key: base64.b64encode(value.encode()).decode() for key, value in plain.items()}


def decode_data(data: Mapping[str, str]) -> dict[str, str]:
    decoded = {}
    for key, value in data.items():
        try:
            decoded[key] = base64.b64decode(value).decode()
        except (ValueError, TypeError):
            # A hand-edited Secret with garbage in a key (not base64, not UTF-8, not even a
            # string) is treated as if the key were absent.
            continue
    return decoded
