"""One GoogleClient: refresh when due, write its private and consumer Secrets, keep a consent
URL published while consent is needed, write status, then bring its Branches in line.

A pass runs in phases: gather (read the client's Secrets and consent state into plain data),
decide (client_plan.calls: which Google calls), act (make them), decide again (client_plan.plan:
what to write, pure), write (Secrets through the Secret writer, status, Branches)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Mapping
from typing import Any

import kopf

from .. import branches, client_plan, clients, wakeups
from ..blockers import blocker_of
from ..client_plan import ClientPlan, Gathered
from ..clients import ClientObservation, RefreshOutcome
from ..conditions import AUTHORIZED, READY, Condition, Reason, find_condition, merge_conditions
from ..consent_state import pending as consent
from ..day2 import Request
from ..google_types import ApiError, ClientCredentials, GoogleError
from ..kube import KubeError, StatusConflict
from ..naming import ROLE_CONSENT, ROLE_CONSUMER, ROLE_PRIVATE, Key, Owner, private_secret_name
from ..ownership import Claim, conflict_message, reserved_name_problem
from ..runtime.context import Operator, StatusBase, status_base
from ..runtime.events import post_transitions
from ..runtime.secrets import Written
from ..timeutil import format_rfc3339
from ..tokens import TokenRecord, record_from_data
from .branch_pass import BranchFanOut
from .grants import revoke_kept_grant
from .notices import NoticeStep


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
        # What of the GoogleClient calls for a pass, as this one begins (kopf's body is live).
        self.essence = wakeups.client_essence(body["metadata"])

    async def run(self, memory: ClientMemory) -> dt.datetime:
        """Runs the pass, updates `memory`; returns when to look again."""
        meta = self.body["metadata"]
        with self.op.cluster.pass_running((str(meta.get("namespace") or ""), str(meta["name"]))):
            return await self._run(memory)

    async def _run(self, memory: ClientMemory) -> dt.datetime:
        op = self.op
        now = op.clock()
        base = status_base(self.body, StatusBase(memory.status, memory.version))
        memory.status, memory.version = base.status, base.version
        try:
            spec = clients.parse_client_spec(self.body, op.settings)
        except clients.SpecError as error:
            await self._write_status(
                memory,
                [Condition(READY, False, Reason.SPEC_INVALID, str(error))],
                {"observedGeneration": clients.generation_of(self.body)},
                now,
            )
            return now + client_plan.SAFETY_RECHECK
        gathered = await self._gather(spec, memory)
        done = client_plan.calls(gathered, now)
        observation = await self._act(gathered, done, memory, now)
        if done.refresh:
            now = op.clock()  # Google took its time: the status and the plan say when it answered
        plan = client_plan.plan(gathered, done, observation, op.settings, now, consent.draw_fresh())
        return await self._write(plan, memory, now)

    async def _gather(self, spec: clients.ClientSpec, memory: ClientMemory) -> Gathered:
        """Read what the pass needs: the credentials, the private Secret's record and whose it
        is, whose the consumer Secret's name is, and what became of the published consent."""
        op = self.op
        owner = Owner("GoogleClient", spec.name, spec.namespace, spec.uid)
        last_status = memory.status
        private_key = (spec.namespace, private_secret_name(spec.name))
        version, data = await op.credentials_data((spec.namespace, spec.credentials_secret))
        private_verdict = await op.secrets.judge(private_key, owner, ROLE_PRIVATE)
        private_conflict = ""
        stored = record = None
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
        # Said at once, token or not, and before the Secret's own verdict: the private name
        # is refused even while no private Secret exists yet.
        consumer_conflict = reserved_name_problem(spec.token_secret_name, spec.name)
        consumer_key = (spec.namespace, spec.token_secret_name)
        consumer_verdict = await op.secrets.judge(consumer_key, owner, ROLE_CONSUMER)
        if not consumer_conflict and consumer_verdict.claim is Claim.FOREIGN:
            consumer_conflict = conflict_message(
                spec.token_secret_name, consumer_verdict.why, "spec.tokenSecretName"
            )
        return Gathered(
            spec=spec,
            last_status=last_status,
            annotations=self.body["metadata"].get("annotations") or {},
            credentials=clients.credentials_from_secret(spec.credentials_secret, data),
            credentials_version=version,
            stored=stored,
            record=record,
            private_conflict=private_conflict,
            consumer_conflict=consumer_conflict,
            consent_state=consent_state,
            requested_refresh=memory.requested_refresh,
        )

    async def _act(
        self, gathered: Gathered, done: client_plan.Calls, memory: ClientMemory, now: dt.datetime
    ) -> ClientObservation:
        """Make the Google calls `done` asks for; the observation with their answers."""
        observation = done.observation
        if done.revoke:
            request = str(gathered.annotations.get(Request.REVOKE.annotation) or "")
            await self._revoke(gathered.record, gathered.owner, request)
            memory.record = None
        credentials = gathered.credentials
        if done.refresh and isinstance(credentials, ClientCredentials):
            if Request.REFRESH in gathered.opened:
                memory.requested_refresh = now
            observation = await self._refresh(observation, credentials)
            # Kept before any write: if the writes fail (API server away), the next pass
            # stores this token instead of asking Google for another.
            memory.record = observation.record
        return observation

    async def _write(self, plan: ClientPlan, memory: ClientMemory, now: dt.datetime) -> dt.datetime:
        """Write what `plan` says: Secrets first, status after (Ready=True is only ever seen
        with the token in place), then the Branches; returns when to look again."""
        op, gathered = self.op, plan.gathered
        spec, owner = gathered.spec, gathered.owner
        if plan.private is not None:
            await op.secrets.ensure(plan.private, owner, ROLE_PRIVATE)
        if plan.delete_consumer:
            await op.secrets.delete_owned(
                spec.namespace, spec.token_secret_name, owner, ROLE_CONSUMER
            )
        consumer_conflict = gathered.consumer_conflict
        record = plan.observation.record
        access = record.access if record else None
        op.metrics.set_grant_end(
            spec.namespace, spec.name, record.grant_expires_at if record else None
        )
        if access is None:
            op.metrics.token_gone(spec.namespace, spec.name)
        elif plan.consumer is not None:
            op.metrics.token_expiration.labels(spec.namespace, spec.name).set(
                access.expires_at.timestamp()
            )
            written = await op.secrets.ensure(plan.consumer, owner, ROLE_CONSUMER)
            if written.outcome is Written.CONFLICT:
                consumer_conflict = conflict_message(
                    spec.token_secret_name, written.why, "spec.tokenSecretName"
                )
        if plan.old_consumer:
            await op.secrets.delete_owned(spec.namespace, plan.old_consumer, owner, ROLE_CONSUMER)
        published, consent_problem, spent = await self._publish_consent(plan, owner)
        conditions, fields = plan.status(consumer_conflict, published, consent_problem, now)
        noticed = await NoticeStep(op, self.body, self.logger).run(
            spec, memory.status, conditions, fields, now
        )
        if noticed.condition is not None:
            conditions.append(noticed.condition)
        await self._write_status(memory, conditions, {**fields, **noticed.fields}, now)
        memory.record = plan.observation.record
        if spent:
            # Only now: had the status write failed, the next pass must still find what
            # became of that consent (a denial) on its Secret.
            await self._retire_state(owner, spent)

        ready = find_condition(memory.status.get("conditions"), READY)
        client_state = branches.ClientState(
            exists=True,
            ready=ready.get("status") == "True",
            reason=str(ready.get("reason", "")),
            access=access if not gathered.private_conflict else None,
            account_email=plan.observation.record.account_email if plan.observation.record else "",
            withdrawn=plan.withdrawn,
        )
        fan_out = await BranchFanOut(op, self.logger, memory.branch_failures).run(
            spec, client_state, now
        )
        depends: set[Key] = {
            (spec.namespace, spec.credentials_secret),
            (spec.namespace, private_secret_name(spec.name)),
            (spec.namespace, spec.token_secret_name),
            *fan_out.secrets,
        }
        if published is not None:
            depends.add((op.settings.operator_namespace, published.secret_name))
        if noticed.secret is not None:
            depends.add(noticed.secret)
        op.cluster.depend((spec.namespace, spec.name), depends)
        wake = min(filter(None, (fan_out.wake, noticed.wake)), default=None)
        return plan.next_pass(now, published, consent_problem, wake)

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
        seen, data = await self.op.secrets.read_owned_at(private_key, owner, ROLE_PRIVATE)
        record = record_from_data(data)
        memory.private_read = (seen, record)
        return record

    async def _revoke(self, record: TokenRecord | None, owner: Owner, request: str) -> None:
        """Revoke on request: at Google first, unless another GoogleClient keeps a grant of
        the same pair (a retryable failure ends the pass, which is tried again), then the
        refresh token goes with the private Secret."""
        if record is not None and record.refresh_token:
            await revoke_kept_grant(self.op, self.body, record, self.logger, request)
        private_key = (owner.namespace, private_secret_name(owner.name))
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
        outcome = RefreshOutcome(
            access=response.access,
            new_refresh_token=response.refresh_token,
            grant_lifetime=response.grant_lifetime,
        )
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
        self, plan: ClientPlan, owner: Owner
    ) -> tuple[consent.PublishedConsent | None, str, str]:
        """Write the consent state `plan` asks for; the URL to publish; when none can be, the
        reason why (a condition message); and the state Secret a new URL replaces, to delete
        once the status says so."""
        if plan.retire_consent:
            await self._retire_state(owner, plan.retire_consent)
        if plan.consent_plan is None:
            return None, "", ""
        namespace = self.op.settings.operator_namespace
        if plan.consent_plan.write is not None:
            try:
                written = await self.op.secrets.ensure(plan.consent_plan.write, owner, ROLE_CONSENT)
            except KubeError as error:
                if error.status != 404:
                    raise
                return None, clients.operator_namespace_missing(namespace), ""
            if written.outcome is Written.CONFLICT:  # a fresh random name: not expected
                name = plan.consent_plan.published.secret_name
                return None, conflict_message(name, written.why, "consent state"), ""
        return plan.consent_plan.published, "", plan.consent_plan.obsolete_secret

    async def _retire_state(self, owner: Owner, secret_name: str) -> None:
        """Delete a consent Secret, only if its labels name this very client (the name comes
        from status, which is not trusted for a delete on its own)."""
        namespace = self.op.settings.operator_namespace
        await self.op.secrets.delete_owned(namespace, secret_name, owner, ROLE_CONSENT)

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
        key = (str(meta["namespace"]), str(meta["name"]))
        try:
            version = await self.op.kube.patch_status("googleclients", *key, patch, memory.version)
        except StatusConflict:
            # Changed since the pass began: if only in what no pass reads (kopf adds its
            # finalizer while a new client's first pass runs), this status is still right.
            fresh = await self.op.kube.get_resource("googleclients", *key)
            if fresh is None or not wakeups.only_unread_changed(self.essence, last_status, fresh):
                raise
            again = str(fresh["metadata"].get("resourceVersion") or "")
            version = await self.op.kube.patch_status("googleclients", *key, patch, again)
        memory.status, memory.version = status, version or memory.version
        post_transitions(
            self.op.events, self.body, last_status.get("conditions"), merged, self.logger
        )
