"""Kubernetes-style status conditions as plain data (pure functions), and their vocabulary:
the condition types and reasons of both kinds (each reason is explained in
docs/reference/conditions.md)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .timeutil import format_rfc3339

# Condition types.
AUTHORIZED = "Authorized"  # GoogleClient: Google holds a consent for it
READY = "Ready"  # GoogleClient and Branch: a valid token is in the consumer Secret
NOTIFIED = "Notified"  # GoogleClient with a webhook: its notices reach the receiver


class Reason:
    """Condition reasons: CamelCase words a person can search for in
    docs/reference/conditions.md."""

    # GoogleClient
    AUTHORIZED = "Authorized"
    CONSENT_REQUIRED = "ConsentRequired"
    CONSENT_DENIED = "ConsentDenied"
    ACCOUNT_NOT_ALLOWED = "AccountNotAllowed"
    AUTHORIZATION_REVOKED = "AuthorizationRevoked"
    TOKEN_VALID = "TokenValid"
    REFRESH_DELAYED = "RefreshDelayed"
    REFRESH_FAILING = "RefreshFailing"
    CLIENT_CREDENTIALS_INVALID = "ClientCredentialsInvalid"
    CREDENTIALS_SECRET_NOT_FOUND = "CredentialsSecretNotFound"
    CREDENTIALS_SECRET_INVALID = "CredentialsSecretInvalid"
    SPEC_INVALID = "SpecInvalid"
    OPERATOR_NAMESPACE_MISSING = "OperatorNamespaceMissing"
    GOOGLE_ANSWER_INVALID = "GoogleAnswerInvalid"
    # The consent (or a refresh) lacks a scope of spec.scopes: the person unticked it.
    SCOPES_NOT_GRANTED = "ScopesNotGranted"
    # Google asks the person to sign in again (invalid_rapt, rapt_required).
    REAUTHENTICATION_REQUIRED = "ReauthenticationRequired"
    # A person asked for the grant to be revoked (annotation revoke-requested-at).
    REVOKED_ON_REQUEST = "RevokedOnRequest"
    # A consent's code exchange failed (status.lastConsentFailure, Event); with
    # ClientCredentialsInvalid, ConsentDenied and the credentials reasons above.
    CONSENT_CODE_INVALID = "ConsentCodeInvalid"
    REDIRECT_URI_MISMATCH = "RedirectURIMismatch"
    CONSENT_EXCHANGE_FAILED = "ConsentExchangeFailed"
    # The Notified condition (a GoogleClient with a webhook), and the notice Events.
    NOTICES_DELIVERED = "NoticesDelivered"
    NOTICE_DELIVERY_FAILING = "NoticeDeliveryFailing"
    NOTIFY_SPEC_INVALID = "NotifySpecInvalid"
    WEBHOOK_SECRET_NOT_FOUND = "WebhookSecretNotFound"
    WEBHOOK_URL_REFUSED = "WebhookURLRefused"
    NOTICE_DELIVERED = "NoticeDelivered"
    NOTICE_DELIVERY_FAILED = "NoticeDeliveryFailed"
    NOTICE_ABANDONED = "NoticeAbandoned"
    # Both kinds: a Secret under a wanted name is not the operator's for this object.
    SECRET_CONFLICT = "SecretConflict"
    # Both kinds: spec.secretTemplate cannot be used (refused by the operator; the CRD
    # refuses it first); the consumer Secret keeps what it held.
    SECRET_TEMPLATE_INVALID = "SecretTemplateInvalid"
    # Branch
    CLIENT_NOT_READY = "ClientNotReady"
    LOCATION_NOT_ACCESSIBLE = "LocationNotAccessible"
    LOCATION_VERIFIED = "LocationVerified"
    LOCATION_CHECK_PENDING = "LocationCheckPending"
    # Something in the Branch (or what it reads) made the operator fail; its siblings go on.
    RECONCILE_FAILED = "ReconcileFailed"


# Authorized=False reasons that stay until a new consent, whatever else happens.
STICKY_CONSENT_REASONS = frozenset(
    {
        Reason.AUTHORIZATION_REVOKED,
        Reason.CONSENT_DENIED,
        Reason.ACCOUNT_NOT_ALLOWED,
        Reason.REVOKED_ON_REQUEST,
        Reason.SCOPES_NOT_GRANTED,
        Reason.REAUTHENTICATION_REQUIRED,
    }
)

# Reasons whose Event is a Warning when the condition is False.
WARNING_REASONS = frozenset(
    {
        Reason.AUTHORIZATION_REVOKED,
        Reason.CLIENT_CREDENTIALS_INVALID,
        Reason.CREDENTIALS_SECRET_NOT_FOUND,
        Reason.CREDENTIALS_SECRET_INVALID,
        Reason.REFRESH_DELAYED,
        Reason.REFRESH_FAILING,
        Reason.CONSENT_DENIED,
        Reason.ACCOUNT_NOT_ALLOWED,
        Reason.LOCATION_NOT_ACCESSIBLE,
        Reason.CLIENT_NOT_READY,
        Reason.SPEC_INVALID,
        Reason.OPERATOR_NAMESPACE_MISSING,
        Reason.GOOGLE_ANSWER_INVALID,
        Reason.SECRET_CONFLICT,
        Reason.SECRET_TEMPLATE_INVALID,
        Reason.RECONCILE_FAILED,
        Reason.SCOPES_NOT_GRANTED,
        Reason.REAUTHENTICATION_REQUIRED,
        Reason.NOTICE_DELIVERY_FAILING,
        Reason.NOTIFY_SPEC_INVALID,
        Reason.WEBHOOK_SECRET_NOT_FOUND,
        Reason.WEBHOOK_URL_REFUSED,
    }
)


@dataclasses.dataclass(frozen=True)
class Condition:
    """What a condition should say; the transition time is filled in by `merge_conditions`."""

    type: str
    status: bool
    reason: str
    message: str

    @property
    def status_text(self) -> str:
        return "True" if self.status else "False"


def merge_conditions(
    current: Sequence[Mapping[str, Any]] | None,
    desired: Iterable[Condition],
    generation: int,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """The conditions list to store: lastTransitionTime moves only when the status flips.

    Keeping the old timestamp when nothing flipped is what makes a status write a no-op
    when nothing changed.
    """
    previous = {str(item.get("type")): item for item in _condition_items(current)}
    merged = []
    for condition in desired:
        before = previous.get(condition.type, {})
        changed = before.get("status") != condition.status_text
        merged.append(
            {
                "type": condition.type,
                "status": condition.status_text,
                "reason": condition.reason,
                "message": condition.message,
                "lastTransitionTime": (
                    format_rfc3339(now) if changed else before.get("lastTransitionTime")
                ),
                "observedGeneration": generation,
            }
        )
    return merged


def with_ready_failed(current: Sequence[Mapping[str, Any]] | None, message: str) -> list[Condition]:
    """A GoogleClient's conditions when the operator failed on it: Ready=False ReconcileFailed
    with ``message``; Authorized as it was (nothing else: a status may hold forged ones)."""
    kept = [
        Condition(
            str(item.get("type")),
            item.get("status") == "True",
            str(item.get("reason") or ""),
            str(item.get("message") or ""),
        )
        for item in _condition_items(current)
        if item.get("type") == AUTHORIZED
    ]
    return [Condition(READY, False, Reason.RECONCILE_FAILED, message), *kept[:1]]


def find_condition(conditions: Sequence[Mapping[str, Any]] | None, kind: str) -> Mapping[str, Any]:
    for item in _condition_items(conditions):
        if item.get("type") == kind:
            return item
    return {}


def _condition_items(conditions: object) -> list[Mapping[str, Any]]:
    """The objects in a status's conditions list; anything else there is ignored (a status
    may have been written around the CRD)."""
    if not isinstance(conditions, Sequence) or isinstance(conditions, str):
        return []
    return [item for item in conditions if isinstance(item, Mapping)]


def changed_reasons(
    before: Sequence[Mapping[str, Any]] | None, after: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """Conditions whose reason or status changed: the transitions worth an Event."""
    return [
        item
        for item in after
        if (old := find_condition(before, str(item["type"]))).get("reason") != item["reason"]
        or old.get("status") != item["status"]
    ]
