"""What a grant Google gave is worth (pure, the clock passed in): the scopes it lacks, when a
time-limited grant ends, and what an `invalid_grant` most likely means. Every text here is
for a person; none holds a token."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from .google_types import GoogleError, clean
from .timeutil import format_rfc3339

# Google answers the sign-in scopes under their long names; both spellings are one scope.
_SCOPE_ALIASES = {
    "email": "https://www.googleapis.com/auth/userinfo.email",
    "profile": "https://www.googleapis.com/auth/userinfo.profile",
}
# What the consent screen calls a permission, for the scopes this operator is made for.
_SCOPE_WORDS = {
    "https://www.googleapis.com/auth/business.manage": (
        "See, edit, create and delete your Google business listings (Business Profile)"
    ),
    "https://www.googleapis.com/auth/plus.business.manage": (
        "See, edit, create and delete your Google business listings (Business Profile, "
        "legacy scope)"
    ),
    "https://www.googleapis.com/auth/cloud-platform": (
        "See, edit, configure and delete your Google Cloud data"
    ),
    "openid": "Associate you with your personal info on Google",
    _SCOPE_ALIASES["email"]: "See your primary Google Account email address",
    _SCOPE_ALIASES[
        "profile"
    ]: "See your personal info, including any personal info you've made public",
}
_MAX_NAMED = 20  # scopes named in one message; a spec may list more

# Google Cloud session control asks for this; the advice is what ends the prompts.
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
REAUTHENTICATION_ADVICE = (
    "Google requires the person to sign in again (Workspace session control, invalid_rapt): "
    "open status.authorization.url to consent again. To stop this recurring, drop the "
    f"{CLOUD_PLATFORM} scope from spec.scopes if the client does not need it, or ask the "
    "Workspace admin to mark this OAuth app as trusted (Admin console > Security > API "
    "controls)"
)
# An app in Testing publishing status gets refresh tokens that die 7 days after consent.
TESTING_LIFETIME = dt.timedelta(days=7)
TESTING_SLACK = dt.timedelta(hours=12)
TESTING_HINT = "the OAuth app is probably in Testing publishing status; publish it"
# The Ready message warns this long before a time-limited grant ends (as does the alert).
GRANT_END_WARNING = dt.timedelta(hours=24)


def _canonical(scope: str) -> str:
    return _SCOPE_ALIASES.get(scope, scope)


def missing_scopes(requested: Iterable[str], granted: Iterable[str]) -> tuple[str, ...]:
    """The requested scopes the grant lacks, in the order requested."""
    have = {_canonical(scope) for scope in granted}
    missing: list[str] = []
    for scope in requested:
        if _canonical(scope) not in have and scope not in missing:
            missing.append(scope)
    return tuple(missing)


def describe_scope(scope: str) -> str:
    """A permission as the consent screen words it, with the scope for the one who knows."""
    shown = clean(scope, 200)
    words = _SCOPE_WORDS.get(_canonical(scope))
    return f'"{words}" ({shown})' if words else shown


def scopes_not_granted_message(missing: Iterable[str]) -> str:
    """Why a grant is not used, naming the permissions the person left unticked."""
    named = [describe_scope(scope) for scope in list(missing)[:_MAX_NAMED]]
    which = "; ".join(named) if named else "a permission spec.scopes asks for"
    return (
        f"the consent did not grant every permission this GoogleClient needs: missing {which}. "
        "Nothing of it was stored; open status.authorization.url and tick every permission "
        "on Google's consent screen"
    )


def grant_expiry(now: dt.datetime, lifetime: dt.timedelta | None) -> dt.datetime | None:
    """When a grant ends, from Google's `refresh_token_expires_in` read at `now`."""
    return None if lifetime is None else now.replace(microsecond=0) + lifetime


def grant_ended(expires_at: dt.datetime | None, now: dt.datetime) -> bool:
    return expires_at is not None and now >= expires_at


def grant_ended_message(expires_at: dt.datetime) -> str:
    return (
        f"the time-limited access the person granted ended at {format_rfc3339(expires_at)}; "
        "Google no longer accepts its refresh token, so the operator stopped asking"
    )


def grant_end_warning(expires_at: dt.datetime | None, now: dt.datetime) -> str:
    """A note for the Ready message within GRANT_END_WARNING of a grant's end; empty else."""
    if expires_at is None or not now < expires_at <= now + GRANT_END_WARNING:
        return ""
    return (
        f"; the time-limited access the person granted ends at {format_rfc3339(expires_at)}: "
        "consent again before then (with no time limit) to keep the tokens coming"
    )


def testing_status_suspected(consented_at: dt.datetime | None, now: dt.datetime) -> bool:
    """An invalid_grant about 7 days after the consent: the mark of an app in Testing."""
    if consented_at is None:
        return False
    return abs(now - consented_at - TESTING_LIFETIME) <= TESTING_SLACK


def invalid_grant_note(
    error: GoogleError,
    consented_at: dt.datetime | None,
    grant_expires_at: dt.datetime | None,
    now: dt.datetime,
) -> str:
    """What a refresh's invalid_grant most likely means, for the Authorized message."""
    if grant_ended(grant_expires_at, now) and grant_expires_at is not None:
        return grant_ended_message(grant_expires_at)
    detail = "invalid_grant" + (f" ({error.subtype})" if error.subtype else "")
    note = f"Google says the grant was revoked or expired: {detail}"
    if testing_status_suspected(consented_at, now):
        note += f"; {TESTING_HINT}"
    return note
