"""What blocks a GoogleClient, and what to do about it (pure): one answer read from its status,
used by the conditions (which reasons hold back a consent URL), `status`, the commands that
wait on the operator, and the metrics.

The kinds are what a waiting command needs: FIX ends a wait at once (a person must change
something in the cluster first), CONSENT and WAITING may end on their own, UNOBSERVED means no
operator has reported on the object."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Mapping
from typing import Any

from .conditions import AUTHORIZED, READY, Reason, find_condition
from .timeutil import parse_rfc3339

# No operator has written a condition on the GoogleClient yet.
NOT_OBSERVED = "NotObserved"

# Ready reasons that no waiting cures: the operator can neither refresh nor publish a
# consent URL until a person fixes what the message names.
FIX_REASONS = frozenset(
    {
        Reason.CREDENTIALS_SECRET_NOT_FOUND,
        Reason.CREDENTIALS_SECRET_INVALID,
        Reason.CLIENT_CREDENTIALS_INVALID,
        Reason.OPERATOR_NAMESPACE_MISSING,
        Reason.SECRET_CONFLICT,
        Reason.SECRET_TEMPLATE_INVALID,
        Reason.SPEC_INVALID,
    }
)


class Kind(enum.StrEnum):
    NONE = "none"  # Ready: nothing blocks it
    FIX = "fix"  # a person must fix something in the cluster first
    CONSENT = "consent"  # waiting for a person to consent at the published URL
    WAITING = "waiting"  # the operator retries on its own (refresh failing, first token)
    UNOBSERVED = "unobserved"  # no operator has reported on it yet


@dataclasses.dataclass(frozen=True)
class Blocker:
    kind: Kind
    reason: str
    message: str  # what is wrong and what to do, from the condition that says so

    @property
    def blocked(self) -> bool:
        return self.kind is not Kind.NONE


def blocker_of(status: Mapping[str, Any] | None) -> Blocker:
    """What blocks the GoogleClient whose status this is (a hostile status reads as what it
    plainly says, or as unobserved)."""
    status = status if isinstance(status, Mapping) else {}
    conditions = status.get("conditions")
    ready = find_condition(conditions, READY)
    authorized = find_condition(conditions, AUTHORIZED)
    if not ready:
        return Blocker(
            Kind.UNOBSERVED,
            NOT_OBSERVED,
            "no operator has reported on this GoogleClient yet: is the operator running and "
            "watching this namespace? (its log says why it waits)",
        )
    ready_reason, ready_message = str(ready.get("reason") or ""), str(ready.get("message") or "")
    if ready.get("status") == "True":
        return Blocker(Kind.NONE, ready_reason, ready_message)
    if ready_reason in FIX_REASONS:
        return Blocker(Kind.FIX, ready_reason, ready_message)
    if authorized.get("status") == "False":
        return Blocker(
            Kind.CONSENT, str(authorized.get("reason") or ""), str(authorized.get("message") or "")
        )
    return Blocker(Kind.WAITING, ready_reason, ready_message)


@dataclasses.dataclass(frozen=True)
class ConsentFailure:
    """status.lastConsentFailure: why the last consent did not store a grant, and when."""

    reason: str
    time: dt.datetime
    # ScopesNotGranted: the scopes the consent lacked (as status says: check against the spec).
    missing_scopes: tuple[str, ...] = ()


# Bounds on what status.lastConsentFailure.missingScopes may name (a status may be forged).
MAX_MISSING_SCOPES = 50
MAX_SCOPE_LENGTH = 512


def consent_failure_of(status: Mapping[str, Any] | None) -> ConsentFailure | None:
    status = status if isinstance(status, Mapping) else {}
    item = status.get("lastConsentFailure")
    if not isinstance(item, Mapping) or not isinstance(item.get("reason"), str):
        return None
    try:
        moment = parse_rfc3339(str(item.get("time")))
    except ValueError:
        return None
    scopes = item.get("missingScopes")
    scopes = scopes if isinstance(scopes, list) else []
    missing = tuple(
        scope
        for scope in scopes[:MAX_MISSING_SCOPES]
        if isinstance(scope, str) and 0 < len(scope) <= MAX_SCOPE_LENGTH and scope.isprintable()
    )
    return ConsentFailure(item["reason"], moment, missing)


# Consent failures after which a new consent URL would fail the same way: a person must fix
# the cluster (or the Google console) first.
FIX_CONSENT_FAILURES = FIX_REASONS | {Reason.REDIRECT_URI_MISMATCH}

_CONSENT_ADVICE = {
    Reason.CONSENT_DENIED: "consent was denied at Google; nothing was stored",
    Reason.CLIENT_CREDENTIALS_INVALID: (
        "Google rejected the OAuth client at the code exchange; fix client_id/client_secret "
        "in the credentials Secret (spec.credentialsSecretRef): a new consent URL is "
        "published once it changes"
    ),
    Reason.REDIRECT_URI_MISMATCH: (
        "the redirect URI differs from the one registered in the Google console; make "
        "spec.redirectURI (or the operator's CALLBACK_URL) match it exactly"
    ),
    Reason.CONSENT_CODE_INVALID: (
        "Google refused the code (expired or already used); open the new consent URL"
    ),
    Reason.SCOPES_NOT_GRANTED: (
        "the person left a permission unticked on Google's consent screen; nothing was stored "
        "and the partial grant was revoked: open the new consent URL and tick every permission"
    ),
    Reason.CONSENT_EXCHANGE_FAILED: (
        "Google could not complete the code exchange; open the new consent URL in a minute"
    ),
}


def consent_failure_advice(reason: str) -> str:
    return _CONSENT_ADVICE.get(
        reason, "see the GoogleClient's Events (kubectl describe googleclient) for the details"
    )
