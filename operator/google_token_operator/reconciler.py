"""Read, decide, write — once per pass, for one GoogleClient and the Branches that use it.

Gathering comes from kopf's indexes (no list calls), decisions from the pure modules
(clients, branches, policy), writes go through the Kubernetes and Google edges, and only
when something changed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import kopf

from . import branches, clients, consent
from .builders import Owner, consumer_secret, content_hash, private_secret, private_secret_name
from .clients import (
    Action,
    ActionKind,
    ClientObservation,
    CredentialsProblem,
    PendingAuthorization,
    Reason,
    RefreshOutcome,
)
from .conditions import Condition, changed_reasons, find_condition, merge_conditions
from .google import ApiError, ClientCredentials, GoogleClient, GoogleError
from .kube import Kube
from .metrics import Metrics
from .settings import Settings
from .timeutil import format_rfc3339, parse_rfc3339
from .tokens import TokenRecord, decode_data, record_from_data
from .views import Key, SecretView, first

Clock = Callable[[], dt.datetime]
# What became of a published consent (the outcome label the consent API sets, or these).
PENDING = "pending"
MISSING = "missing"
# Even with nothing scheduled, look again now and then: level-based, not only edge-based.
SAFETY_RECHECK = dt.timedelta(minutes=10)

WARNING_REASONS = frozenset(
    {
        Reason.AUTHORIZATION_REVOKED,
        Reason.CLIENT_CREDENTIALS_INVALID,
        Reason.CREDENTIALS_SECRET_NOT_FOUND,
        Reason.CREDENTIALS_SECRET_INVALID,
        Reason.REFRESH_DELAYED,
        Reason.REFRESH_FAILING,
        Reason.CONSENT_DENIED,
        Reason.LOCATION_NOT_ACCESSIBLE,
        Reason.CLIENT_NOT_READY,
        Reason.SPEC_INVALID,
    }
)


@dataclasses.dataclass
class Indexes:
    """The kopf indexes a pass reads (live mappings of key -> collection of values)."""

    managed_secrets: Mapping[Key, Iterable[SecretView]]
    secret_versions: Mapping[Key, Iterable[str]]
    branches_by_client: Mapping[Key, Iterable[dict[str, Any]]]

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> Indexes:
        """kopf passes each index as a keyword argument named after its function."""
        return cls(
            managed_secrets=kwargs["managed_secrets"],
            secret_versions=kwargs["secret_versions"],
            branches_by_client=kwargs["branches_by_client"],
        )


@dataclasses.dataclass
class SecretMemory:
    """What this process wrote last, so a lagging index does not cause a second write."""

    version_before: str
    written_hash: str


class Operator:
    """Shared state of the running operator: settings, edges and small in-memory caches."""

    def __init__(
        self,
        settings: Settings,
        kube: Kube,
        google: GoogleClient,
        metrics: Metrics,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.google = google
        self.metrics = metrics
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._credentials: dict[Key, tuple[str, dict[str, str] | None]] = {}
        self._written: dict[Key, SecretMemory] = {}
        self._branch_status: dict[str, dict[str, Any]] = {}

    # --- gathering ---------------------------------------------------------------------------

    async def credentials_data(
        self, namespace: str, name: str, indexes: Indexes
    ) -> tuple[str, dict[str, str] | None]:
        """(resourceVersion, decoded data) of a credentials Secret; GET only when it changed."""
        version = first(indexes.secret_versions, (namespace, name))
        if version is None:
            return "", None
        cached = self._credentials.get((namespace, name))
        if cached is not None and cached[0] == version:
            return cached
        secret = await self.kube.get_secret(namespace, name)
        if secret is None:
            return "", None
        entry = (
            str(secret["metadata"].get("resourceVersion", "")),
            decode_data(secret.get("data") or {}),
        )
        self._credentials[(namespace, name)] = entry
        return entry

    # --- secrets -----------------------------------------------------------------------------

    async def sync_secret(self, desired: Mapping[str, Any], indexes: Indexes, role: str) -> bool:
        """Write the Secret if the cluster's copy differs; True if it wrote."""
        meta = desired["metadata"]
        key = (str(meta["namespace"]), str(meta["name"]))
        want = content_hash(desired.get("data") or {})
        seen = first(indexes.managed_secrets, key)
        if seen is not None and seen.data_hash == want:
            return False
        memory = self._written.get(key)
        if (
            memory is not None
            and memory.written_hash == want
            and seen is not None
            and seen.resource_version == memory.version_before
        ):
            return False  # we wrote it; the index has not caught up yet
        await self.kube.write_secret(desired)
        self._written[key] = SecretMemory(
            version_before=seen.resource_version if seen else "", written_hash=want
        )
        self.metrics.secret_writes.labels(role).inc()
        return True

    def index_lags(self, key: Key, indexes: Indexes) -> bool:
        """True while the index still shows the Secret as it was before this process wrote it."""
        memory = self._written.get(key)
        if memory is None:
            return False
        seen = first(indexes.managed_secrets, key)
        return (seen.resource_version if seen else "") == memory.version_before

    def branch_status(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The Branch status this process wrote last, else what the index shows."""
        uid = str(body["metadata"].get("uid", ""))
        return self._branch_status.get(uid) or dict(body.get("status") or {})

    def remember_branch_status(self, uid: str, status: dict[str, Any]) -> None:
        self._branch_status[uid] = status

    def forget_branch(self, uid: str) -> None:
        self._branch_status.pop(uid, None)

    def forget_secret(self, key: Key) -> None:
        self._written.pop(key, None)
        self._credentials.pop(key, None)


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
                [Condition(clients.READY, False, Reason.SPEC_INVALID, str(error))],
                {"observedGeneration": int(self.body["metadata"].get("generation") or 0)},
                now,
            )
            return now + SAFETY_RECHECK, status, last_record

        version, data = await op.credentials_data(spec.namespace, spec.credentials_secret, indexes)
        credentials = clients.credentials_from_secret(spec.credentials_secret, data)
        record = self._current_record(spec, indexes, last_record)
        consent_state = await self._consent_state(last_status)
        previous_reason = str(
            find_condition(last_status.get("conditions"), clients.AUTHORIZED).get("reason", "")
        )
        if consent_state == consent.OUTCOME_DENIED:
            previous_reason = Reason.CONSENT_DENIED
        observation = ClientObservation(
            spec=spec,
            credentials=credentials,
            credentials_version=version,
            record=record,
            failure=clients.failure_from_status(last_status),
            previous_authorized_reason=(
                Reason.CONSENT_DENIED
                if consent_state == consent.OUTCOME_DENIED
                else previous_reason
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

        pending = await self._pending_consent(
            observation, action, last_status, consent_state == PENDING, now
        )
        conditions = clients.desired_conditions(observation, action, now)
        fields = clients.desired_status(observation, action, pending, now)
        status = await self._write_status(last_status, conditions, fields, now)

        client_state = branches.ClientState(
            exists=True,
            ready=find_condition(status.get("conditions"), clients.READY).get("status") == "True",
            reason=str(find_condition(status.get("conditions"), clients.READY).get("reason", "")),
            access=access,
        )
        branch_wake = await BranchFanOut(op, self.logger).run(spec, client_state, indexes, now)
        return _earliest(now, action, pending, branch_wake), status, observation.record

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

    async def _pending_consent(
        self,
        observation: ClientObservation,
        action: Action,
        last_status: Mapping[str, Any],
        state_unused: bool,
        now: dt.datetime,
    ) -> PendingAuthorization | None:
        """Keep a usable consent URL while consent is needed; drop the state otherwise."""
        op, spec = self.op, observation.spec
        current = last_status.get("authorization") or {}
        old_secret = str(current.get("stateSecretName") or "")
        if action.kind is not ActionKind.CONSENT or isinstance(
            observation.credentials, CredentialsProblem
        ):
            if old_secret:
                await op.kube.delete_secret(op.settings.operator_namespace, old_secret)
            return None
        credentials = observation.credentials
        fingerprint = consent.consent_fingerprint(
            credentials.client_id, spec.redirect_uri, spec.scopes
        )
        if (
            state_unused
            and current.get("fingerprint") == fingerprint
            and current.get("expiresAt")
            and parse_rfc3339(str(current["expiresAt"])) > now
        ):
            return PendingAuthorization(
                url=str(current["url"]),
                expires_at=parse_rfc3339(str(current["expiresAt"])),
                fingerprint=fingerprint,
                secret_name=old_secret,
            )
        state, verifier = consent.new_state(), consent.new_code_verifier()
        pending = consent.PendingConsent(
            state_sha256=consent.state_hash(state),
            client_namespace=spec.namespace,
            client_name=spec.name,
            client_uid=spec.uid,
            code_verifier=verifier,
            redirect_uri=spec.redirect_uri,
            scopes=consent.requested_scopes(spec.scopes),
            fingerprint=fingerprint,
            expires_at=now.replace(microsecond=0) + op.settings.consent_ttl,
        )
        await op.kube.write_secret(
            consent.consent_secret(op.settings.operator_namespace, state, pending)
        )
        op.metrics.secret_writes.labels("consent").inc()
        if old_secret:
            await op.kube.delete_secret(op.settings.operator_namespace, old_secret)
        url = consent.authorization_url(
            op.settings.google.auth_uri,
            credentials.client_id,
            spec.redirect_uri,
            spec.scopes,
            state,
            verifier,
            spec.login_hint or None,
        )
        return PendingAuthorization(
            url, pending.expires_at, fingerprint, consent.consent_secret_name(state)
        )

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
        ready = find_condition(merged, clients.READY)
        self.op.metrics.ready.labels("GoogleClient", meta["namespace"], meta["name"]).set(
            1 if ready.get("status") == "True" else 0
        )
        post_transitions(self.body, last_status.get("conditions"), merged, self.logger)
        return status

    async def _remove_renamed_secret(
        self, last_status: Mapping[str, Any], secret_name: str, namespace: str
    ) -> None:
        previous = last_status.get("tokenSecretName")
        if previous and previous != secret_name:
            await self.op.kube.delete_secret(namespace, str(previous))
            self.op.forget_secret((namespace, str(previous)))


class BranchFanOut:
    """Brings every Branch of one client in line with the client's token (one Google call
    per refresh, whatever the number of Branches)."""

    def __init__(self, operator: Operator, logger: kopf.Logger) -> None:
        self.op = operator
        self.logger = logger

    async def run(
        self,
        client: clients.ClientSpec,
        state: branches.ClientState,
        indexes: Indexes,
        now: dt.datetime,
    ) -> dt.datetime | None:
        """Returns when a Branch next needs a look (location re-check), if sooner than usual."""
        wake: dt.datetime | None = None
        for body in list(indexes.branches_by_client.get((client.namespace, client.name), ())):
            if body["metadata"].get("deletionTimestamp"):
                continue
            due = await reconcile_branch(self.op, body, state, indexes, now, self.logger)
            if due is not None and (wake is None or due < wake):
                wake = due
        return wake


async def reconcile_branch(
    op: Operator,
    body: Mapping[str, Any],
    client: branches.ClientState,
    indexes: Indexes,
    now: dt.datetime,
    logger: kopf.Logger,
) -> dt.datetime | None:
    spec = branches.parse_branch_spec(body)
    status = op.branch_status(body)
    owner = Owner("Branch", spec.name, spec.namespace, spec.uid)
    access = client.access
    if access is not None:
        await op.sync_secret(
            consumer_secret(owner, spec.token_secret_name, spec.client_name, access, spec.location),
            indexes,
            "consumer",
        )
    previous_secret = status.get("tokenSecretName")
    if previous_secret and previous_secret != spec.token_secret_name:
        await op.kube.delete_secret(spec.namespace, str(previous_secret))

    location = branches.location_from_status(status)
    token_usable = client.ready and access is not None and access.expires_at > now
    if token_usable and branches.location_check_due(
        spec, location, now, op.settings.location_check_interval
    ):
        assert access is not None
        location = await _check_location(op, spec, access.value, now, logger) or location

    ready = branches.branch_ready(spec, client, location, now)
    fields = branches.branch_status_fields(spec, client, location, written=access is not None)
    merged = merge_conditions(status.get("conditions"), [ready], spec.generation, now)
    desired = {**fields, "conditions": merged}
    patch = clients.status_patch(status, desired)
    if patch:
        await op.kube.patch_status("branches", spec.namespace, spec.name, patch)
        post_transitions(body, status.get("conditions"), merged, logger)
        op.remember_branch_status(
            spec.uid, {k: v for k, v in {**status, **desired}.items() if v is not None}
        )
    op.metrics.ready.labels("Branch", spec.namespace, spec.name).set(1 if ready.status else 0)
    if location is None or not token_usable:
        return None
    recheck = op.settings.location_check_interval
    if not location.accessible:
        recheck = min(recheck, branches.REFUSED_LOCATION_RECHECK)
    return location.checked_at + recheck


async def _check_location(
    op: Operator,
    spec: branches.BranchSpec,
    access_token: str,
    now: dt.datetime,
    logger: kopf.Logger,
) -> branches.LocationCheck | None:
    """Ask Google about the location; None when Google could not answer (try again later)."""
    try:
        answer = await op.google.get_location(access_token, spec.location.location_id)
    except ApiError as error:
        if error.status in (403, 404):
            return branches.LocationCheck(
                accessible=False,
                checked_at=now,
                checked_generation=spec.generation,
                detail=str(error),
            )
        logger.warning(f"Could not check location {spec.location.location_name}: {error}")
        return None
    return branches.LocationCheck(
        accessible=True,
        checked_at=now,
        checked_generation=spec.generation,
        title=str(answer.get("title", "")),
    )


def post_transitions(
    body: Mapping[str, Any],
    before: Iterable[Mapping[str, Any]] | None,
    after: list[dict[str, Any]],
    logger: kopf.Logger,
) -> None:
    """One Event per condition whose reason changed: meaningful transitions, not every refresh."""
    for condition in changed_reasons(list(before or ()), after):
        reason = str(condition["reason"])
        target = cast(kopf.Body, body)  # kopf only reads apiVersion, kind and metadata
        if condition["status"] == "True" or reason not in WARNING_REASONS:
            kopf.info(target, reason=reason, message=str(condition["message"]))
        else:
            kopf.warn(target, reason=reason, message=str(condition["message"]))
        logger.info(f"{condition['type']}={condition['status']} ({reason}): {condition['message']}")


def _earliest(
    now: dt.datetime,
    action: Action,
    pending: PendingAuthorization | None,
    branch_wake: dt.datetime | None,
) -> dt.datetime:
    candidates = [now + SAFETY_RECHECK]
    if action.until is not None:
        candidates.append(action.until)
    if pending is not None:
        candidates.append(pending.expires_at)
    if branch_wake is not None:
        candidates.append(branch_wake)
    return min(candidates)
