"""One GoogleClient pass decided over plain data (pure: the clock and the randomness are passed
in).

The pass gathers what it reads into `Gathered`; `calls` says which Google calls to make (a
revoke asked for, a refresh that is due); once they are made, `plan` says what to write: the
private and consumer Secrets, the consent state, and the status, which the writes' own answers
finish (a consumer Secret found taken, a consent that could not be published)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from . import blockers, clients, day2
from .builders import consumer_secret, private_secret
from .clients import Action, ActionKind, ClientObservation, ClientSpec, CredentialsProblem
from .conditions import AUTHORIZED, Condition, Reason, find_condition
from .consent_state import pending as consent
from .day2 import Request
from .google_types import ClientCredentials
from .naming import Owner
from .secret_template import TemplateProblem
from .settings import Settings
from .tokens import TokenRecord

# Even with nothing scheduled, look again now and then: level-based, not only edge-based.
SAFETY_RECHECK = dt.timedelta(minutes=10)
# A consent URL that could not be published (its namespace is missing) is tried again soon:
# creating a namespace wakes nothing here.
UNPUBLISHED_RECHECK = dt.timedelta(seconds=15)


@dataclasses.dataclass(frozen=True)
class Gathered:
    """What one pass read of its GoogleClient, as plain data."""

    spec: ClientSpec
    # The status the pass starts from (this process's last write, or what the watch shows).
    last_status: Mapping[str, Any]
    annotations: Mapping[str, Any]
    credentials: ClientCredentials | CredentialsProblem
    credentials_version: str
    stored: TokenRecord | None  # what the private Secret holds
    record: TokenRecord | None  # the record to work with (this process's own may be newer)
    private_conflict: str  # why the private Secret's name cannot be used ("" if it can)
    consumer_conflict: str  # why spec.tokenSecretName cannot be used, known before writing
    consent_state: str  # what became of the published consent (consent.PENDING, ...)
    # When a refresh last ran on request (bounds requested refreshes; see day2.py).
    requested_refresh: dt.datetime | None = None

    @property
    def owner(self) -> Owner:
        return Owner("GoogleClient", self.spec.name, self.spec.namespace, self.spec.uid)

    @property
    def opened(self) -> dict[Request, str]:
        """The day-2 requests open on the GoogleClient."""
        return day2.open_requests(self.annotations, self.last_status.get("handledRequests"))


def observe(gathered: Gathered) -> ClientObservation:
    record = gathered.record
    authorized = find_condition(gathered.last_status.get("conditions"), AUTHORIZED)
    return ClientObservation(
        spec=gathered.spec,
        credentials=gathered.credentials,
        credentials_version=gathered.credentials_version,
        record=record,
        failure=clients.failure_from_status(gathered.last_status),
        previous_authorized_reason=consent.previous_reason(
            gathered.consent_state, str(authorized.get("reason", ""))
        ),
        private_conflict=gathered.private_conflict,
        requests=frozenset(gathered.opened),
        requested_refresh_at=day2.requested_refresh_at(
            record.access.issued_at if record and record.access else None,
            gathered.requested_refresh,
        ),
        consent_missing_scopes=_consent_missing_scopes(gathered),
    )


def _consent_missing_scopes(gathered: Gathered) -> tuple[str, ...]:
    """The scopes the last consent lacked, as far as spec.scopes asks for them (status only
    says which; the spec bounds what may be named)."""
    failure = blockers.consent_failure_of(gathered.last_status)
    if failure is None or failure.reason != Reason.SCOPES_NOT_GRANTED:
        return ()
    return tuple(scope for scope in failure.missing_scopes if scope in gathered.spec.scopes)


@dataclasses.dataclass(frozen=True)
class Calls:
    """The Google calls a pass makes, and what it knows before making them."""

    observation: ClientObservation  # after the revoke, when there is one
    revoke: bool  # revoke the grant (then drop the private Secret)
    refresh: bool  # refresh the access token


def calls(gathered: Gathered, now: dt.datetime) -> Calls:
    observation = observe(gathered)
    revoke = Request.REVOKE in gathered.opened and not gathered.private_conflict
    if revoke:
        observation = clients.after_revoke(observation)
    refresh = clients.next_action(observation, now).kind is ActionKind.REFRESH
    return Calls(observation, revoke, refresh)


@dataclasses.dataclass(frozen=True)
class ClientPlan:
    """What a pass writes, once its Google calls are made."""

    gathered: Gathered
    observation: ClientObservation  # after the Google calls
    action: Action
    refreshed: bool
    revoked: bool
    private: dict[str, Any] | None  # the private Secret to write
    withdrawn: bool  # no token may be served: the consumer Secrets go
    consumer: dict[str, Any] | None  # the consumer Secret to write
    old_consumer: str  # a consumer Secret status named before spec.tokenSecretName changed
    consent_plan: consent.ConsentPlan | None  # the consent URL to publish, its state Secrets
    retire_consent: str  # a consent state Secret to delete: no consent URL is wanted
    reconsented: bool  # a re-consent asked for was given

    @property
    def delete_consumer(self) -> bool:
        """Delete the consumer Secret: withdrawn, and the name is the client's to use."""
        return self.withdrawn and not self.gathered.consumer_conflict

    def status(
        self,
        consumer_conflict: str,
        published: consent.PublishedConsent | None,
        consent_problem: str,
        now: dt.datetime,
    ) -> tuple[list[Condition], dict[str, Any]]:
        """The conditions and status fields, given what the writes found: the consumer Secret
        taken (`consumer_conflict`), the consent URL published, or why it could not be."""
        observation, action, last_status = self.observation, self.action, self.gathered.last_status
        conditions = clients.desired_conditions(
            observation, action, now, consent_problem, consumer_conflict
        )
        done = clients.handled_requests(
            observation,
            action,
            refreshed=self.refreshed,
            revoked=self.revoked,
            reconsented=self.reconsented,
        )
        handled = day2.acknowledged(last_status.get("handledRequests"), self.gathered.opened, done)
        fields = clients.desired_status(observation, action, published, handled)
        if consumer_conflict or self.withdrawn:
            fields["tokenSecretName"] = None
        return conditions, fields

    def next_pass(
        self,
        now: dt.datetime,
        published: consent.PublishedConsent | None,
        consent_problem: str,
        branch_wake: dt.datetime | None,
    ) -> dt.datetime:
        """When the pass should run again: the first of what is scheduled, at the latest in
        SAFETY_RECHECK."""
        access = self.observation.record.access if self.observation.record else None
        candidates = [now + SAFETY_RECHECK, self.action.until, branch_wake]
        if published is not None:
            candidates.append(published.expires_at)
        if consent_problem:
            candidates.append(now + UNPUBLISHED_RECHECK)
        # When the token runs out without a new one, Ready must say so then, not later.
        if access is not None and access.expires_at > now:
            candidates.append(access.expires_at)
        return min(moment for moment in candidates if moment is not None)


def plan(
    gathered: Gathered,
    done: Calls,
    observation: ClientObservation,
    settings: Settings,
    now: dt.datetime,
    fresh: consent.Fresh,
) -> ClientPlan:
    """What to write after the Google calls `done` made (`observation` holds their answers)."""
    spec, owner = gathered.spec, gathered.owner
    action = clients.next_action(observation, now)
    record = observation.record
    access = record.access if record else None
    consumer = None
    template = spec.secret_template
    if (
        access is not None
        and not gathered.private_conflict
        and not gathered.consumer_conflict
        and not isinstance(template, TemplateProblem)
    ):
        email = record.account_email if record else ""
        consumer = consumer_secret(
            owner, spec.token_secret_name, spec.name, access, None, template, email
        )
    previous = gathered.last_status.get("tokenSecretName")
    old_consumer = ""
    if isinstance(previous, str) and previous and previous != spec.token_secret_name:
        old_consumer = previous
    opened = gathered.opened
    reconsented = (
        Request.REAUTHORIZE in opened and gathered.consent_state == consent.OUTCOME_AUTHORIZED
    )
    consent_plan, retire = _consent(
        gathered,
        observation,
        action,
        settings,
        now,
        fresh,
        reconsent="" if reconsented else opened.get(Request.REAUTHORIZE, ""),
    )
    return ClientPlan(
        gathered=gathered,
        observation=observation,
        action=action,
        refreshed=done.refresh,
        revoked=done.revoke,
        private=(
            private_secret(owner, record)
            # A revoke dropped the private Secret: nothing is stored any more.
            if record is not None and record != (None if done.revoke else gathered.stored)
            else None
        ),
        withdrawn=clients.tokens_withdrawn(action),
        consumer=consumer,
        old_consumer=old_consumer,
        consent_plan=consent_plan,
        retire_consent=retire,
        reconsented=reconsented,
    )


def _consent(
    gathered: Gathered,
    observation: ClientObservation,
    action: Action,
    settings: Settings,
    now: dt.datetime,
    fresh: consent.Fresh,
    reconsent: str,
) -> tuple[consent.ConsentPlan | None, str]:
    """Keep a usable consent URL while consent is needed or a re-consent (`reconsent`, the
    open request) is asked for; else retire the published one's state Secret (its name)."""
    spec, credentials = gathered.spec, observation.credentials
    published = consent.published_from_status(gathered.last_status.get("authorization"))
    wanted = action.kind is ActionKind.CONSENT or (
        reconsent and action.kind is not ActionKind.BLOCKED
    )
    if not wanted or isinstance(credentials, CredentialsProblem):
        return None, published.secret_name if published is not None else ""
    request = consent.ConsentRequest(
        client_namespace=spec.namespace,
        client_name=spec.name,
        client_uid=spec.uid,
        client_id=credentials.client_id,
        redirect_uri=spec.redirect_uri,
        scopes=spec.scopes,
        login_hint=spec.login_hint,
        auth_uri=settings.google.auth_uri,
        ttl=settings.consent_ttl,
        reconsent=reconsent,
    )
    namespace = settings.operator_namespace
    return (
        consent.plan_consent(request, published, gathered.consent_state, now, fresh, namespace),
        "",
    )
