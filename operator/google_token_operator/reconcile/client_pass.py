"""One GoogleClient: refresh when due, write its private and consumer Secrets, keep a consent
URL published while consent is needed, write status, then bring its Branches in line."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Mapping
from typing import Any

import kopf

from .. import branches, clients, day2
from ..blockers import blocker_of
from ..builders import consumer_secret, private_secret
from ..clients import Action, ActionKind, ClientObservation, CredentialsProblem, RefreshOutcome
from ..conditions import AUTHORIZED, READY, Condition, Reason, find_condition, merge_conditions
from ..consent_state import pending as consent
from ..day2 import Request
from ..google_types import ApiError, ClientCredentials, GoogleError
from ..kube import KubeError
from ..naming import ROLE_CONSUMER, ROLE_PRIVATE, Key, Owner, private_secret_name
from ..ownership import Claim, claim, conflict_message, reserved_name_problem
from ..runtime.context import Operator, StatusBase, status_base
from ..runtime.events import post_transitions
from ..runtime.secrets import Written
from ..timeutil import format_rfc3339
from ..tokens import TokenRecord, record_from_data
from ..views import secret_meta
from .branch_pass import BranchFanOut
from .grants import revoke_grant

# Even with nothing scheduled, look again now and then: level-based, not only edge-based.
SAFETY_RECHECK = dt.timedelta(minutes=10)
# A consent URL that could not be published (its namespace is missing) is tried again soon:
# creating a namespace wakes nothing here.
UNPUBLISHED_RECHECK = dt.timedelta(seconds=15)


@dataclasses.dataclass
class ClientMemory:
    """What a GoogleClient's daemon keeps between passes."""

    status: dict[str, Any]
    # The resourceVersion of the GoogleClient that had `status` (see StatusBase).
    version: str = ""
    record: TokenRecord | None = None
    # When a refresh last ran on request (bounds requested refreshes; see day2.py).
    requested_refresh: dt.datetime | None = None
    branch_failures: dict[str, int] = dataclasses.field(default_factory=dict)
    # The private Secret as last read by GET (its resourceVersion, its record), for when the
    # watch keeps no data of it: read again only once it changed.
    private_read: tuple[str, TokenRecord | None] | None = None


class ClientPass:
    """One read-decide-write pass over a GoogleClient."""

    def __init__(self, operator: Operator, body: Mapping[str, Any], logger: kopf.Logger) -> None:
        self.op = operator
        self.body = body
        self.logger = logger

    async def run(self, memory: ClientMemory) -> dt.datetime:
        """Runs the pass, updates `memory`; returns when to look again."""
        meta = self.body["metadata"]
        with self.op.cluster.pass_running((str(meta.get("namespace") or ""), str(meta["name"]))):
            return await self._run(memory)

    async def _run(self, memory: ClientMemory) -> dt.datetime:
        op, cluster = self.op, self.op.cluster
        now = op.clock()
        base = status_base(self.body, StatusBase(memory.status, memory.version))
        memory.status, memory.version = base.status, base.version
        last_status = base.status
        try:
            spec = clients.parse_client_spec(self.body, op.settings)
        except clients.SpecError as error:
            await self._write_status(
                memory,
                [Condition(READY, False, Reason.SPEC_INVALID, str(error))],
                {"observedGeneration": clients.generation_of(self.body)},
                now,
            )
            return now + SAFETY_RECHECK
        client_key = (spec.namespace, spec.name)
        owner = Owner("GoogleClient", spec.name, spec.namespace, spec.uid)
        credentials_key = (spec.namespace, spec.credentials_secret)
        private_key = (spec.namespace, private_secret_name(spec.name))
        consumer_key = (spec.namespace, spec.token_secret_name)

        version, data = await op.credentials_data(credentials_key)
        credentials = clients.credentials_from_secret(spec.credentials_secret, data)
        private_verdict = claim(
            cluster.secret_meta.get(private_key), owner, ROLE_PRIVATE, private_key[1]
        )
        private_conflict = ""
        stored: TokenRecord | None = None
        record = None
        if private_verdict.claim is Claim.FOREIGN:
            private_conflict = conflict_message(
                private_key[1], private_verdict.why, "name for this GoogleClient"
            )
        else:
            stored, record = await self._current_record(private_key, owner, memory)
        consent_state = self._consent_state(spec, last_status)
        if consent_state == consent.OUTCOME_AUTHORIZED and not private_conflict:
            # A consent just stored a grant: read it, not a view that may lag behind it.
            stored = record = record_from_data(
                await op.secrets.read_owned(private_key, owner, ROLE_PRIVATE)
            )
        opened = day2.open_requests(
            self.body["metadata"].get("annotations") or {}, last_status.get("handledRequests")
        )
        authorized = find_condition(last_status.get("conditions"), AUTHORIZED)
        observation = ClientObservation(
            spec=spec,
            credentials=credentials,
            credentials_version=version,
            record=record,
            failure=clients.failure_from_status(last_status),
            previous_authorized_reason=consent.previous_reason(
                consent_state, str(authorized.get("reason", ""))
            ),
            private_conflict=private_conflict,
            requests=frozenset(opened),
            requested_refresh_at=day2.requested_refresh_at(
                record.access.issued_at if record and record.access else None,
                memory.requested_refresh,
            ),
        )
        revoked = Request.REVOKE in opened and not private_conflict
        if revoked:
            await self._revoke(observation.record, owner, private_key)
            observation = clients.after_revoke(observation)
            stored = memory.record = None
        action = clients.next_action(observation, now)
        refreshed = action.kind is ActionKind.REFRESH
        if refreshed and isinstance(credentials, ClientCredentials):
            if Request.REFRESH in opened:
                memory.requested_refresh = now
            observation = await self._refresh(observation, credentials)
            now = op.clock()
            action = clients.next_action(observation, now)
            # Kept before any write: if the writes fail (API server away), the next pass
            # stores this token instead of asking Google for another.
            memory.record = observation.record

        if observation.record is not None and observation.record != stored:
            await op.secrets.ensure(private_secret(owner, observation.record), owner, ROLE_PRIVATE)

        # Secrets first, status after: Ready=True is only ever seen with the token in place.
        access = observation.record.access if observation.record else None
        consumer_verdict = claim(
            cluster.secret_meta.get(consumer_key), owner, ROLE_CONSUMER, spec.token_secret_name
        )
        # Said at once, token or not, and before the Secret's own verdict: the private name
        # is refused even while no private Secret exists yet.
        consumer_conflict = reserved_name_problem(spec.token_secret_name, spec.name)
        withdrawn = clients.tokens_withdrawn(action)
        if not consumer_conflict and consumer_verdict.claim is Claim.FOREIGN:
            consumer_conflict = conflict_message(
                spec.token_secret_name, consumer_verdict.why, "spec.tokenSecretName"
            )
        if withdrawn and not consumer_conflict:
            await op.secrets.delete_owned(
                spec.namespace, spec.token_secret_name, owner, ROLE_CONSUMER
            )
        if access is None:
            op.metrics.token_gone(spec.namespace, spec.name)
        elif not private_conflict and not consumer_conflict:
            op.metrics.token_expiration.labels(spec.namespace, spec.name).set(
                access.expires_at.timestamp()
            )
            written = await op.secrets.ensure(
                consumer_secret(owner, spec.token_secret_name, spec.name, access),
                owner,
                ROLE_CONSUMER,
            )
            if written.outcome is Written.CONFLICT:
                consumer_conflict = conflict_message(
                    spec.token_secret_name, written.why, "spec.tokenSecretName"
                )
        previous = last_status.get("tokenSecretName")
        if isinstance(previous, str) and previous and previous != spec.token_secret_name:
            await op.secrets.delete_owned(spec.namespace, previous, owner, ROLE_CONSUMER)

        reconsented = Request.REAUTHORIZE in opened and consent_state == consent.OUTCOME_AUTHORIZED
        published, consent_problem, spent = await self._publish_consent(
            observation,
            action,
            last_status,
            consent_state,
            now,
            reconsent="" if reconsented else opened.get(Request.REAUTHORIZE, ""),
        )
        conditions = clients.desired_conditions(
            observation, action, now, consent_problem, consumer_conflict
        )
        done = clients.handled_requests(
            observation, action, refreshed=refreshed, revoked=revoked, reconsented=reconsented
        )
        handled = day2.acknowledged(last_status.get("handledRequests"), opened, done)
        fields = clients.desired_status(observation, action, published, handled)
        if consumer_conflict or withdrawn:
            fields["tokenSecretName"] = None
        await self._write_status(memory, conditions, fields, now)
        memory.record = observation.record
        if spent:
            # Only now: had the status write failed, the next pass must still find what
            # became of that consent (a denial) on its Secret.
            await self._retire_state(spec, spent)

        ready = find_condition(memory.status.get("conditions"), READY)
        client_state = branches.ClientState(
            exists=True,
            ready=ready.get("status") == "True",
            reason=str(ready.get("reason", "")),
            access=access if not private_conflict else None,
            withdrawn=withdrawn,
        )
        fan_out = await BranchFanOut(op, self.logger, memory.branch_failures).run(
            spec, client_state, now
        )
        depends: set[Key] = {credentials_key, private_key, consumer_key, *fan_out.secrets}
        if published is not None:
            depends.add((op.settings.operator_namespace, published.secret_name))
        cluster.depend(client_key, depends)
        retry_publish = now + UNPUBLISHED_RECHECK if consent_problem else None
        # When the token runs out without a new one, Ready must say so then, not later.
        expiry = access.expires_at if access is not None and access.expires_at > now else None
        return _earliest(now, action, published, fan_out.wake, retry_publish, expiry)

    def _consent_state(self, spec: clients.ClientSpec, last_status: Mapping[str, Any]) -> str:
        """What became of the published consent: PENDING, an outcome label, or MISSING."""
        published = consent.published_from_status(last_status.get("authorization"))
        if published is None or not published.secret_name:
            return consent.MISSING
        seen = self.op.cluster.secret_meta.get(
            (self.op.settings.operator_namespace, published.secret_name)
        )
        if seen is None or not consent.is_state_of(
            seen.labels, spec.namespace, spec.name, spec.uid
        ):
            return consent.MISSING
        return str(seen.labels.get(consent.OUTCOME_LABEL) or consent.PENDING)

    async def _current_record(
        self, private_key: Key, owner: Owner, memory: ClientMemory
    ) -> tuple[TokenRecord | None, TokenRecord | None]:
        """(what the private Secret holds, the record to work with): the Secret's, or this
        process's own when the watch has not caught up with a write, or when a write of a
        newer token failed."""
        if self.op.secrets.lags(private_key):
            return memory.record, memory.record
        view = self.op.cluster.managed.get(private_key)
        if view is None:
            stored = None
        elif view.private_data is not None:
            stored = record_from_data(view.private_data)
        else:
            stored = await self._read_private(private_key, owner, view.resource_version, memory)
        return stored, clients.newer_record(stored, memory.record)

    async def _read_private(
        self, private_key: Key, owner: Owner, version: str, memory: ClientMemory
    ) -> TokenRecord | None:
        """The record of a private Secret the watch keeps no data of (its client was not
        known yet when it was seen): read by GET once per version, judged on what was read."""
        if memory.private_read is not None and memory.private_read[0] == version:
            return memory.private_read[1]
        current = await self.op.kube.get_secret(*private_key)
        record = None
        if current is not None:
            verdict = claim(secret_meta(current), owner, ROLE_PRIVATE, private_key[1])
            if verdict.claim is Claim.OURS:
                record = record_from_data(current.get("data") or {})
        seen = str(((current or {}).get("metadata") or {}).get("resourceVersion") or "")
        memory.private_read = (seen, record)
        return record

    async def _revoke(self, record: TokenRecord | None, owner: Owner, private_key: Key) -> None:
        """Revoke on request: at Google first (a retryable failure ends the pass, which is
        tried again), then the refresh token goes with the private Secret."""
        if record is not None and record.refresh_token:
            await revoke_grant(self.op.google, record.refresh_token, self.logger)
        await self.op.secrets.delete_owned(*private_key, owner, ROLE_PRIVATE)

    async def _refresh(
        self, observation: ClientObservation, credentials: ClientCredentials
    ) -> ClientObservation:
        op, spec, record = self.op, observation.spec, observation.record
        assert record is not None
        started = time.monotonic()
        try:
            response = await op.google.refresh(credentials, record.refresh_token, spec.scopes)
        except GoogleError as error:
            op.metrics.refresh_attempts.labels(spec.namespace, spec.name, error.kind.value).inc()
            self.logger.warning(f"Refreshing the access token failed: {error}")
            return clients.after_refresh(observation, RefreshOutcome(error=error), op.clock())
        finally:
            op.metrics.refresh_duration.observe(time.monotonic() - started)
        op.metrics.refresh_attempts.labels(spec.namespace, spec.name, "success").inc()
        self.logger.info(
            f"Access token refreshed; valid until {format_rfc3339(response.access.expires_at)}"
        )
        outcome = RefreshOutcome(access=response.access, new_refresh_token=response.refresh_token)
        refreshed = clients.after_refresh(observation, outcome, op.clock())
        if refreshed.record is not None and not refreshed.record.account_email:
            refreshed = refreshed.with_record(await self._with_email(refreshed.record))
        if refreshed.record is not None and not refreshed.record.client_id:
            refreshed = refreshed.with_record(
                dataclasses.replace(refreshed.record, client_id=credentials.client_id)
            )
        return refreshed

    async def _with_email(self, record: TokenRecord) -> TokenRecord:
        """A record placed by hand may lack the account: ask Google once (userinfo)."""
        if record.access is None:
            return record
        try:
            account = await self.op.google.userinfo(record.access.value)
        except ApiError as error:
            self.logger.info(f"Could not read the account e-mail: {error}")
            return record
        return dataclasses.replace(record, account_email=account.email)

    async def _publish_consent(
        self,
        observation: ClientObservation,
        action: Action,
        last_status: Mapping[str, Any],
        published_state: str,
        now: dt.datetime,
        reconsent: str,
    ) -> tuple[consent.PublishedConsent | None, str, str]:
        """Keep a usable consent URL while consent is needed or a re-consent (`reconsent`,
        the open request) is asked for; drop the state otherwise.

        Returns the URL to publish; when none can be, the reason why (a condition message);
        and the state Secret a new URL replaces, to delete once the status says so.
        """
        op, spec = self.op, observation.spec
        namespace = op.settings.operator_namespace
        published = consent.published_from_status(last_status.get("authorization"))
        credentials = observation.credentials
        wanted = action.kind is ActionKind.CONSENT or (
            reconsent and action.kind is not ActionKind.BLOCKED
        )
        if not wanted or isinstance(credentials, CredentialsProblem):
            if published is not None:
                await self._retire_state(spec, published.secret_name)
            return None, "", ""
        request = consent.ConsentRequest(
            client_namespace=spec.namespace,
            client_name=spec.name,
            client_uid=spec.uid,
            client_id=credentials.client_id,
            redirect_uri=spec.redirect_uri,
            scopes=spec.scopes,
            login_hint=spec.login_hint,
            auth_uri=op.settings.google.auth_uri,
            ttl=op.settings.consent_ttl,
            reconsent=reconsent,
        )
        plan = consent.plan_consent(
            request, published, published_state, now, consent.draw_fresh(), namespace
        )
        if plan.write is not None:
            try:
                await op.kube.create_secret(plan.write)
            except KubeError as error:
                if error.status != 404:
                    raise
                return None, clients.operator_namespace_missing(namespace), ""
            op.metrics.secret_writes.labels("consent").inc()
        return plan.published, "", plan.obsolete_secret

    async def _retire_state(self, spec: clients.ClientSpec, secret_name: str) -> None:
        """Delete a consent Secret, only if its labels name this very client (the name comes
        from status, which is not trusted for a delete on its own)."""
        namespace = self.op.settings.operator_namespace
        seen = self.op.cluster.secret_meta.get((namespace, secret_name))
        if seen is not None and consent.is_state_of(
            seen.labels, spec.namespace, spec.name, spec.uid
        ):
            await self.op.kube.delete_secret(namespace, secret_name, uid=seen.uid)

    async def _write_status(
        self,
        memory: ClientMemory,
        conditions: list[Condition],
        fields: Mapping[str, Any],
        now: dt.datetime,
    ) -> None:
        """Patch the status from `memory`'s and keep the result there (StatusConflict when
        the GoogleClient changed since: the pass must start again from a fresh read)."""
        last_status = memory.status
        meta = self.body["metadata"]
        merged = merge_conditions(
            last_status.get("conditions"), conditions, clients.generation_of(self.body), now
        )
        desired = {**fields, "conditions": merged}
        patch = clients.status_patch(last_status, desired)
        status = {k: v for k, v in {**last_status, **desired}.items() if v is not None}
        # The gauges follow every pass, so a restarted operator reports at once.
        ready = find_condition(merged, READY)
        self.op.metrics.ready.labels("GoogleClient", meta["namespace"], meta["name"]).set(
            1 if ready.get("status") == "True" else 0
        )
        self.op.metrics.set_authorized(
            str(meta["namespace"]), str(meta["name"]), find_condition(merged, AUTHORIZED)
        )
        self.op.metrics.set_blocked(
            str(meta["namespace"]), str(meta["name"]), blocker_of({"conditions": merged})
        )
        if not patch:
            memory.status = status
            return
        version = await self.op.kube.patch_status(
            "googleclients", str(meta["namespace"]), str(meta["name"]), patch, memory.version
        )
        memory.status, memory.version = status, version or memory.version
        post_transitions(
            self.op.events, self.body, last_status.get("conditions"), merged, self.logger
        )


def _earliest(
    now: dt.datetime,
    action: Action,
    published: consent.PublishedConsent | None,
    *wakes: dt.datetime | None,
) -> dt.datetime:
    """When the pass should run again: the first of what is scheduled, at the latest in
    SAFETY_RECHECK."""
    candidates = [now + SAFETY_RECHECK, action.until, *wakes]
    if published is not None:
        candidates.append(published.expires_at)
    return min(moment for moment in candidates if moment is not None)
