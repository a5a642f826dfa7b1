"""Pending consent: state, PKCE, the consent URL, and whether to reuse or mint one (pure;
the randomness is drawn by `draw_fresh` and passed in).

This replaces the seed's `oauth_states` table. A pending consent lives in a Secret in the
operator's namespace holding only the SHA-256 of the state (never the state itself), the
PKCE verifier, the redirect URI and an expiry. The Secret's name is derived from the hash,
so the one who receives the state can find it with a single GET and no list.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from .. import GROUP, MANAGED_BY
from ..conditions import Reason
from ..naming import CLIENT_LABEL, MANAGED_BY_LABEL, ROLE_CONSENT, ROLE_LABEL, labels_for
from ..settings import IDENTITY_SCOPES
from ..timeutil import format_rfc3339, is_ascii_number, parse_rfc3339
from ..tokens import decode_data, encode_data
from .contract import Outcome

STATE_BYTES = 32  # 256 bits; the issue asks for at least 128.
VERIFIER_BYTES = 64  # 86 url-safe characters, inside RFC 7636's 43..128.
CONSENT_SECRET_PREFIX = "gto-consent-"
CLIENT_NAMESPACE_LABEL = f"{GROUP}/client-namespace"
# A consent Secret lives in the operator's namespace, so no ownerReference can name its
# GoogleClient: these labels do, and only a Secret whose labels name the very client (uid
# included) is ever deleted on its behalf.
CLIENT_UID_LABEL = f"{GROUP}/client-uid"
# When the pending consent expires (Unix seconds), so expired ones are swept from metadata.
EXPIRES_LABEL = f"{GROUP}/expires"
# Set on a consent Secret once its state was spent: denied, exchanging, authorized, ...
OUTCOME_LABEL = f"{GROUP}/consent-outcome"
OUTCOME_EXCHANGING = "exchanging"  # claimed; the code is being exchanged right now
OUTCOME_DENIED = str(Outcome.DENIED)
OUTCOME_ACCOUNT_NOT_ALLOWED = str(Outcome.ACCOUNT_NOT_ALLOWED)
OUTCOME_SCOPES_NOT_GRANTED = str(Outcome.SCOPES_NOT_GRANTED)
OUTCOME_AUTHORIZED = str(Outcome.AUTHORIZED)  # the grant is stored in the private Secret


@dataclasses.dataclass(frozen=True)
class Fresh:
    """The randomness a new consent needs: the state and the PKCE verifier."""

    state: str
    verifier: str


def draw_fresh() -> Fresh:
    return Fresh(secrets.token_urlsafe(STATE_BYTES), secrets.token_urlsafe(VERIFIER_BYTES))


def code_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def state_hash(state: str) -> str:
    # surrogatepass: a state read from JSON may hold lone surrogates; it hashes, never raises.
    return hashlib.sha256(state.encode("utf-8", "surrogatepass")).hexdigest()


def consent_secret_name(state: str) -> str:
    # 40 hex characters of the hash are plenty to address it and keep the name short.
    return CONSENT_SECRET_PREFIX + state_hash(state)[:40]


def requested_scopes(scopes: tuple[str, ...]) -> tuple[str, ...]:
    """The client's scopes plus openid and email, without duplicates, order kept."""
    return tuple(dict.fromkeys((*scopes, *IDENTITY_SCOPES)))


def consent_fingerprint(
    client_id: str, redirect_uri: str, scopes: tuple[str, ...], reconsent: str = ""
) -> str:
    """What a pending consent depends on; when it changes the pending state is void. A new
    re-consent request (its annotation value) voids it too: it asks for a fresh URL."""
    extra = (f"reconsent:{reconsent}",) if reconsent else ()
    material = "\n".join((client_id, redirect_uri, *sorted(scopes), *extra))
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def authorization_url(
    auth_uri: str,
    client_id: str,
    redirect_uri: str,
    scopes: tuple[str, ...],
    state: str,
    verifier: str,
    login_hint: str | None,
) -> str:
    params = {
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": " ".join(requested_scopes(scopes)),
        "access_type": "offline",  # without it Google issues no refresh token
        "prompt": "consent",  # without the consent screen Google issues no new refresh token
        "include_granted_scopes": "true",
        "state": state,
        "code_challenge": code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    if login_hint:
        params["login_hint"] = login_hint
    return f"{auth_uri}?{urlencode(params)}"


@dataclasses.dataclass(frozen=True)
class PendingConsent:
    """One pending consent as stored (no raw state)."""

    state_sha256: str
    client_namespace: str
    client_name: str
    client_uid: str
    code_verifier: str
    redirect_uri: str
    scopes: tuple[str, ...]
    fingerprint: str
    expires_at: dt.datetime

    def expired(self, now: dt.datetime) -> bool:
        return now >= self.expires_at


def consent_secret(operator_namespace: str, state: str, pending: PendingConsent) -> dict[str, Any]:
    plain = {
        "state_sha256": pending.state_sha256,
        "client_namespace": pending.client_namespace,
        "client_name": pending.client_name,
        "client_uid": pending.client_uid,
        "code_verifier": pending.code_verifier,
        "redirect_uri": pending.redirect_uri,
        "scopes": " ".join(pending.scopes),
        "fingerprint": pending.fingerprint,
        "expires_at": format_rfc3339(pending.expires_at),
    }
    labels = labels_for(pending.client_name, role=ROLE_CONSENT)
    labels[CLIENT_NAMESPACE_LABEL] = pending.client_namespace
    labels[CLIENT_UID_LABEL] = pending.client_uid
    labels[EXPIRES_LABEL] = str(int(pending.expires_at.timestamp()))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": consent_secret_name(state),
            "namespace": operator_namespace,
            "labels": labels,
        },
        "data": encode_data(plain),
    }


def expired_state(labels: Mapping[str, str], now: dt.datetime) -> bool:
    """True for a consent Secret whose consent expired (or that says nothing readable)."""
    if labels.get(MANAGED_BY_LABEL) != MANAGED_BY or labels.get(ROLE_LABEL) != ROLE_CONSENT:
        return False
    expires = labels.get(EXPIRES_LABEL, "")
    return not is_ascii_number(expires) or int(expires) < now.timestamp()


def previous_reason(consent_outcome: str, authorized_reason: str) -> str:
    """The Authorized reason a pass starts from: what became of the published consent (a
    denial, a refused account) outranks what status said before."""
    if consent_outcome == OUTCOME_DENIED:
        return Reason.CONSENT_DENIED
    if consent_outcome == OUTCOME_ACCOUNT_NOT_ALLOWED:
        return Reason.ACCOUNT_NOT_ALLOWED
    if consent_outcome == OUTCOME_SCOPES_NOT_GRANTED:
        return Reason.SCOPES_NOT_GRANTED
    return authorized_reason


def is_state_of(labels: Mapping[str, str], namespace: str, name: str, uid: str) -> bool:
    """True when a consent Secret's labels name exactly this GoogleClient."""
    return (
        labels.get(MANAGED_BY_LABEL) == MANAGED_BY
        and labels.get(ROLE_LABEL) == ROLE_CONSENT
        and labels.get(CLIENT_LABEL) == name
        and labels.get(CLIENT_NAMESPACE_LABEL) == namespace
        and labels.get(CLIENT_UID_LABEL) == uid
    )


def pending_from_data(data: Mapping[str, str] | None) -> PendingConsent | None:
    plain = decode_data(data or {})
    try:
        return PendingConsent(
            state_sha256=plain["state_sha256"],
            client_namespace=plain["client_namespace"],
            client_name=plain["client_name"],
            client_uid=plain["client_uid"],
            code_verifier=plain["code_verifier"],
            redirect_uri=plain["redirect_uri"],
            scopes=tuple(plain["scopes"].split()),
            fingerprint=plain["fingerprint"],
            expires_at=parse_rfc3339(plain["expires_at"]),
        )
    except (KeyError, ValueError):
        return None


@dataclasses.dataclass(frozen=True)
class PublishedConsent:
    """The consent URL as published in status.authorization."""

    url: str
    expires_at: dt.datetime
    fingerprint: str
    secret_name: str

    def to_status(self) -> dict[str, str]:
        return {
            "url": self.url,
            "expiresAt": format_rfc3339(self.expires_at),
            "fingerprint": self.fingerprint,
            "stateSecretName": self.secret_name,
        }


def published_from_status(authorization: Mapping[str, Any] | None) -> PublishedConsent | None:
    """status.authorization as last written; None when absent or unreadable."""
    item = authorization if isinstance(authorization, Mapping) else {}
    try:
        return PublishedConsent(
            url=str(item["url"]),
            expires_at=parse_rfc3339(str(item["expiresAt"])),
            fingerprint=str(item.get("fingerprint") or ""),
            secret_name=str(item.get("stateSecretName") or ""),
        )
    except (KeyError, ValueError):
        return None


@dataclasses.dataclass(frozen=True)
class ConsentRequest:
    """What a consent URL for one GoogleClient is made of."""

    client_namespace: str
    client_name: str
    client_uid: str
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    login_hint: str
    auth_uri: str
    ttl: dt.timedelta
    # The open re-consent request this URL answers (its acknowledgement), if any.
    reconsent: str = ""

    @property
    def fingerprint(self) -> str:
        return consent_fingerprint(self.client_id, self.redirect_uri, self.scopes, self.reconsent)


@dataclasses.dataclass(frozen=True)
class ConsentPlan:
    """The consent URL to publish, and the state Secrets to write and to delete for it."""

    published: PublishedConsent
    write: dict[str, Any] | None = None
    obsolete_secret: str = ""


# What a pass knows of the published consent's state, besides the outcome labels above.
PENDING = "pending"  # published, not used yet
MISSING = "missing"  # none published, or its Secret is gone


def plan_consent(
    request: ConsentRequest,
    published: PublishedConsent | None,
    published_state: str,
    now: dt.datetime,
    fresh: Fresh,
    operator_namespace: str,
) -> ConsentPlan:
    """Keep the published URL while it is unused, unexpired and made for the same client id,
    redirect URI and scopes, and while its code is being exchanged (the outcome is still to be
    written on its Secret); otherwise mint a new one from `fresh` and retire the old state."""
    if published is not None and published.expires_at > now:
        if published_state == OUTCOME_EXCHANGING:
            return ConsentPlan(published)
        if published_state == PENDING and published.fingerprint == request.fingerprint:
            return ConsentPlan(published)
    pending = PendingConsent(
        state_sha256=state_hash(fresh.state),
        client_namespace=request.client_namespace,
        client_name=request.client_name,
        client_uid=request.client_uid,
        code_verifier=fresh.verifier,
        redirect_uri=request.redirect_uri,
        scopes=requested_scopes(request.scopes),
        fingerprint=request.fingerprint,
        expires_at=now.replace(microsecond=0) + request.ttl,
    )
    url = authorization_url(
        request.auth_uri,
        request.client_id,
        request.redirect_uri,
        request.scopes,
        fresh.state,
        fresh.verifier,
        request.login_hint or None,
    )
    return ConsentPlan(
        published=PublishedConsent(
            url, pending.expires_at, request.fingerprint, consent_secret_name(fresh.state)
        ),
        write=consent_secret(operator_namespace, fresh.state, pending),
        obsolete_secret=published.secret_name if published is not None else "",
    )
