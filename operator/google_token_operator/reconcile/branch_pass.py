"""The Branches of one GoogleClient: consumer Secrets, location checks, status.

Each Branch is handled on its own: a Branch with a bad spec or a Secret conflict, or one whose
write fails, reports it in its own status and never stops its siblings.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from .. import branches, clients, policy
from ..builders import consumer_secret
from ..conditions import READY, Condition, Reason, merge_conditions
from ..google_types import ApiError, location_title
from ..kube import KubeError, StatusConflict, WriteFenced
from ..logs import tagged
from ..naming import ROLE_CONSUMER, Key, Owner
from ..ownership import Claim, conflict_message
from ..runtime.context import Operator, StatusBase
from ..runtime.events import post_transitions
from ..runtime.secrets import Written
from ..secret_template import SecretTemplate
from ..unforeseen import unexpected


@dataclasses.dataclass
class FanOutResult:
    wake: dt.datetime | None = None  # when a Branch next needs a look, if sooner than usual
    secrets: set[Key] = dataclasses.field(default_factory=set)  # what the Branches depend on
    # The first Kubernetes error a Branch met (its siblings went on), for a caller that
    # retries as a whole.
    kube_error: KubeError | None = None


class BranchFanOut:
    """Brings every Branch of one client in line with the client's token (one Google call
    per refresh, whatever the number of Branches)."""

    def __init__(
        self, operator: Operator, logger: kopf.Logger, failures: dict[str, int] | None = None
    ) -> None:
        self.op = operator
        self.logger = logger
        # Failed passes per Branch uid, kept by the client's daemon between passes.
        self._failures = failures if failures is not None else {}

    async def run(
        self, client: clients.ClientSpec, state: branches.ClientState, now: dt.datetime
    ) -> FanOutResult:
        return await self.each(
            self.op.cluster.branches_of((client.namespace, client.name)), state, now
        )

    async def each(
        self, bodies: Iterable[Mapping[str, Any]], state: branches.ClientState, now: dt.datetime
    ) -> FanOutResult:
        """Each Branch on its own: whatever one raises (a Kubernetes error, or something in
        it no check foresaw), its siblings go on and it backs off."""
        result = FanOutResult()
        for body in bodies:
            uid = str(body["metadata"].get("uid", ""))
            try:
                try:
                    wake, secrets = await reconcile_branch(self.op, body, state, now, self.logger)
                except StatusConflict:
                    # Changed since the status this pass began from: once more, at once,
                    # over the Branch as it is now (a second conflict backs off below).
                    wake, secrets = await self._again(body, state, now)
            except WriteFenced:
                raise
            except Exception as error:
                attempt = self._failures.get(uid, 0) + 1
                self._failures[uid] = attempt
                delay = policy.backoff_delay(
                    attempt, None, policy.jitter_fraction(uid, str(attempt))
                )
                about = tagged(self.logger, body)
                if isinstance(error, KubeError):
                    about.warning(f"Branch not reconciled: {error}; trying again in {delay}")
                    result.kube_error = result.kube_error or error
                else:
                    about.error(
                        f"Branch not reconciled: {unexpected(error)}; trying again in {delay}"
                    )
                    await self._report_failure(body, error)
                wake, secrets = now + delay, set()
            else:
                self._failures.pop(uid, None)
            result.secrets |= secrets
            if wake is not None and (result.wake is None or wake < result.wake):
                result.wake = wake
        return result

    async def _report_failure(self, body: Mapping[str, Any], error: Exception) -> None:
        """The Branch's Ready condition says the operator failed on it, if its status can
        be written at all."""
        failed = Condition(
            READY,
            False,
            Reason.RECONCILE_FAILED,
            f"the operator failed on this Branch ({unexpected(error)}); see the operator's log",
        )
        about = tagged(self.logger, body)
        try:
            await _write_status(self.op, body, self.op.branch_status(body), {}, failed, about)
        except WriteFenced:
            raise
        except Exception as again:
            about.error(f"Branch status not written ({unexpected(again)})")

    async def _again(
        self, body: Mapping[str, Any], state: branches.ClientState, now: dt.datetime
    ) -> tuple[dt.datetime | None, set[Key]]:
        meta = body["metadata"]
        self.op.forget_branch(str(meta.get("uid", "")))
        fresh = await self.op.kube.get_resource("branches", meta["namespace"], meta["name"])
        if fresh is None:  # deleted meanwhile: the watch tells the fan-out soon
            return None, set()
        return await reconcile_branch(self.op, fresh, state, now, self.logger)


async def reconcile_branch(
    op: Operator,
    body: Mapping[str, Any],
    client: branches.ClientState,
    now: dt.datetime,
    logger: kopf.Logger,
) -> tuple[dt.datetime | None, set[Key]]:
    """One Branch: (when it next needs a look, the Secrets it depends on)."""
    logger = tagged(logger, body)  # its lines name the Branch, not the client whose pass it is
    base = op.branch_status(body)
    status = base.status
    try:
        spec = branches.parse_branch_spec(body)
    except branches.BranchSpecError as error:
        meta = body["metadata"]
        invalid = Condition(READY, False, Reason.SPEC_INVALID, str(error))
        generation = meta.get("generation") if isinstance(meta.get("generation"), int) else 0
        await _write_status(op, body, base, {"observedGeneration": generation}, invalid, logger)
        return None, set()
    owner = Owner("Branch", spec.name, spec.namespace, spec.uid)
    key = (spec.namespace, spec.token_secret_name)
    access = client.access
    conflict = ""
    verdict = await op.secrets.judge(key, owner, ROLE_CONSUMER)
    if verdict.claim is Claim.FOREIGN:  # said at once, token or not
        conflict = conflict_message(spec.token_secret_name, verdict.why, "spec.tokenSecretName")
    elif client.withdrawn:
        await op.secrets.delete_owned(spec.namespace, spec.token_secret_name, owner, ROLE_CONSUMER)
    elif access is not None and isinstance(template := spec.secret_template, SecretTemplate):
        desired = consumer_secret(
            owner,
            spec.token_secret_name,
            spec.client_name,
            access,
            spec.location,
            template,
            client.account_email,
        )
        written = await op.secrets.ensure(desired, owner, ROLE_CONSUMER)
        if written.outcome is Written.CONFLICT:
            conflict = conflict_message(spec.token_secret_name, written.why, "spec.tokenSecretName")
    previous = status.get("tokenSecretName")
    if isinstance(previous, str) and previous and previous != spec.token_secret_name:
        await op.secrets.delete_owned(spec.namespace, previous, owner, ROLE_CONSUMER)

    location = branches.location_from_status(status)
    token_usable = client.ready and access is not None and access.expires_at > now
    if token_usable and branches.location_check_due(
        spec, location, now, op.settings.location_check_interval
    ):
        assert access is not None
        location = await _check_location(op, spec, access.value, now, logger) or location

    ready = branches.branch_ready(spec, client, location, now, conflict)
    fields = branches.branch_status_fields(
        spec, location, written=access is not None and not conflict
    )
    await _write_status(op, body, base, fields, ready, logger)
    op.metrics.ready.labels("Branch", spec.namespace, spec.name).set(1 if ready.status else 0)
    if location is None or not token_usable:
        return None, {key}
    recheck = op.settings.location_check_interval
    if not location.accessible:
        recheck = min(recheck, branches.REFUSED_LOCATION_RECHECK)
    return location.checked_at + recheck, {key}


async def _write_status(
    op: Operator,
    body: Mapping[str, Any],
    base: StatusBase,
    fields: Mapping[str, Any],
    ready: Condition,
    logger: kopf.Logger,
) -> None:
    status = base.status
    meta = body["metadata"]
    generation = meta.get("generation") if isinstance(meta.get("generation"), int) else 0
    merged = merge_conditions(status.get("conditions"), [ready], generation, op.clock())
    desired = {**fields, "conditions": merged}
    patch = clients.status_patch(status, desired)
    if not patch:
        return
    version = await op.kube.patch_status(
        "branches", str(meta["namespace"]), str(meta["name"]), patch, base.version
    )
    post_transitions(op.events, body, status.get("conditions"), merged, logger)
    op.remember_branch_status(
        str(meta.get("uid", "")),
        StatusBase(
            {k: v for k, v in {**status, **desired}.items() if v is not None},
            version or base.version,
        ),
    )


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
        title=location_title(answer),
    )
