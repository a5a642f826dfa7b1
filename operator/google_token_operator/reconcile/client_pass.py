"""One GoogleClient: refresh when due, write its private and consumer Secrets, keep a consent
URL published while consent is needed, write status, then bring its Branches in line."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Mapping
from typing import Any

import kopf

from .. import branches, clients
from ..builders import consumer_secret, private_secret
from ..clients import Action, ActionKind, ClientObservation, CredentialsProblem, RefreshOutcome
from ..conditions import AUTHORIZED, READY, Condition, Reason, find_condition, merge_conditions
from ..consent import pending as consent
from ..google_types import ApiError, ClientCredentials, GoogleError
from ..kube import KubeError
from ..naming import Owner, private_secret_name
from ..timeutil import format_rfc3339
from ..tokens import TokenRecord, record_from_data
from ..views import first
from .branch_pass import BranchFanOut
from .context import Indexes, Operator
from .events import post_transitions

# What became of a published consent (the outcome label the consent API sets, or these).
PENDING = "pending"
MISSING = "missing"
# Even with nothing scheduled, look again now and then: level-based, not only edge-based.
SAFETY_RECHECK = dt.timedelta(minutes=10)
# A consent URL that could not be published (its namespace is missing) is tried again soon:
# creating a namespace wakes nothing here.
UNPUBLISHED_RECHECK = dt.timedelta(seconds=15)


class ClientPass:
    """One read-decide-write pass over a GoogleClient. Memory lives in the daemon between passes."""

    def __init__(self, operator: Operator, body: Mapping[str, Any], logger: kopf.Logger) -> None:
        self.op = operator
        self.body = body
        self.logger = logger

    async def run(
        self, indexes: Indexes, last_status: Mapping[str, Any], last_record: TokenRecord | None
    ) -> tuple[dt.datetime, dict[str, Any], TokenRecord | None]:
        """Returns (when to look again, the status now stored, the record now stored)."""
        op = self.op
        now = op.clock()
        try:
            spec = clients.parse_client_spec(self.body, op.settings)
        except clients.SpecError as error:
            status = await self._write_status(
                last_status,
                [Condition(READY, False, Reason.SPEC_INVALID, str(error))],
                {"observedGeneration": int(self.body["metadata"].get("generation") or 0)},
                now,
            )
            return now + SAFETY_RECHECK, status, last_record

        version, data = await op.credentials_data(spec.namespace, spec.credentials_secret, indexes)
        credentials = clients.credentials_from_secret(spec.credentials_secret, data)
        record = self._current_record(spec, indexes, last_record)
        consent_state = await self._consent_state(last_status)
        authorized = find_condition(last_status.get("conditions"), AUTHORIZED)
        observation = ClientObservation(
            spec=spec,
            credentials=credentials,
            credentials_version=version,
            record=record,
            failure=clients.failure_from_status(last_status),
            previous_authorized_reason=(
                Reason.CONSENT_DENIED
                if consent_state == consent.OUTCOME_DENIED
                else str(authorized.get("reason", ""))
            ),
        )
        action = clients.next_action(observation, now)
        if action.kind is ActionKind.REFRESH and isinstance(credentials, ClientCredentials):
            observation = await self._refresh(observation, credentials)
            now = op.clock()
            action = clients.next_action(observation, now)

        owner = Owner("GoogleClient", spec.name, spec.namespace, spec.uid)
        if observation.record is not None and observation.record != record:
            await op.sync_secret(private_secret(owner, observation.record), indexes, "private")

        # Secrets first, status after: Ready=True is only ever seen with the token in place.
        access = observation.record.access if observation.record else None
        if access is not None:
            op.metrics.token_expiration.labels(spec.namespace, spec.name).set(
                access.expires_at.timestamp()
            )
            await op.sync_secret(
                consumer_secret(owner, spec.token_secret_name, spec.name, access),
                indexes,
                "consumer",
            )
        await self._remove_renamed_secret(last_status, spec.token_secret_name, spec.namespace)

        published, consent_problem = await self._publish_consent(
            observation, action, last_status, consent_state == PENDING, now
        )
        conditions = clients.desired_conditions(observation, action, now, consent_problem)
        fields = clients.desired_status(observation, action, published, now)
        status = await self._write_status(last_status, conditions, fields, now)

        ready = find_condition(status.get("conditions"), READY)
        client_state = branches.ClientState(
            exists=True,
            ready=ready.get("status") == "True",
            reason=str(ready.get("reason", "")),
            access=access,
        )
        branch_wake = await BranchFanOut(op, self.logger).run(spec, client_state, indexes, now)
        retry_publish = now + UNPUBLISHED_RECHECK if consent_problem else None
        next_at = _earliest(now, action, published, branch_wake, retry_publish)
        return next_at, status, observation.record

    async def _consent_state(self, last_status: Mapping[str, Any]) -> str:
        """What became of the published consent: PENDING, an outcome label, or MISSING."""
        name = (last_status.get("authorization") or {}).get("stateSecretName")
        if not name:
            return MISSING
        secret = await self.op.kube.get_secret(self.op.settings.operator_namespace, str(name))
        if secret is None:
            return MISSING
        labels = secret["metadata"].get("labels") or {}
        return str(labels.get(consent.OUTCOME_LABEL) or PENDING)

    def _current_record(
        self, spec: clients.ClientSpec, indexes: Indexes, last_record: TokenRecord | None
    ) -> TokenRecord | None:
        key = (spec.namespace, private_secret_name(spec.name))
        if self.op.index_lags(key, indexes):
            return last_record
        view = first(indexes.managed_secrets, key)
        return record_from_data(view.private_data) if view is not None else None

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
            email = await self.op.google.userinfo_email(record.access.value)
        except ApiError as error:
            self.logger.info(f"Could not read the account e-mail: {error}")
            return record
        return dataclasses.replace(record, account_email=email)

    async def _publish_consent(
        self,
        observation: ClientObservation,
        action: Action,
        last_status: Mapping[str, Any],
        state_unused: bool,
        now: dt.datetime,
    ) -> tuple[consent.PublishedConsent | None, str]:
        """Keep a usable consent URL while consent is needed; drop the state otherwise.

        Returns the URL to publish and, when none can be, the reason why (a condition message).
        """
        op, spec = self.op, observation.spec
        namespace = op.settings.operator_namespace
        published = consent.published_from_status(last_status.get("authorization"))
        credentials = observation.credentials
        if action.kind is not ActionKind.CONSENT or isinstance(credentials, CredentialsProblem):
            if published is not None and published.secret_name:
                await op.kube.delete_secret(namespace, published.secret_name)
            return None, ""
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
        )
        plan = consent.plan_consent(
            request, published, state_unused, now, consent.draw_fresh(), namespace
        )
        if plan.write is not None:
            try:
                await op.kube.write_secret(plan.write)
            except KubeError as error:
                if error.status != 404:
                    raise
                return None, clients.operator_namespace_missing(namespace)
            op.metrics.secret_writes.labels("consent").inc()
        if plan.obsolete_secret:
            await op.kube.delete_secret(namespace, plan.obsolete_secret)
        return plan.published, ""

    async def _write_status(
        self,
        last_status: Mapping[str, Any],
        conditions: list[Condition],
        fields: Mapping[str, Any],
        now: dt.datetime,
    ) -> dict[str, Any]:
        meta = self.body["metadata"]
        merged = merge_conditions(
            last_status.get("conditions"), conditions, int(meta.get("generation") or 0), now
        )
        desired = {**fields, "conditions": merged}
        patch = clients.status_patch(last_status, desired)
        status = {k: v for k, v in {**last_status, **desired}.items() if v is not None}
        if not patch:
            return status
        await self.op.kube.patch_status(
            "googleclients", str(meta["namespace"]), str(meta["name"]), patch
        )
        ready = find_condition(merged, READY)
        self.op.metrics.ready.labels("GoogleClient", meta["namespace"], meta["name"]).set(
            1 if ready.get("status") == "True" else 0
        )
        post_transitions(
            self.op.events, self.body, last_status.get("conditions"), merged, self.logger
        )
        return status

    async def _remove_renamed_secret(
        self, last_status: Mapping[str, Any], secret_name: str, namespace: str
    ) -> None:
        previous = last_status.get("tokenSecretName")
        if previous and previous != secret_name:
            await self.op.kube.delete_secret(namespace, str(previous))
            self.op.forget_secret((namespace, str(previous)))


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
