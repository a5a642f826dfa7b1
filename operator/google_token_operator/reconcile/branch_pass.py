"""The Branches of one GoogleClient: consumer Secrets, location checks, status."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import kopf

from .. import branches, clients
from ..builders import consumer_secret
from ..conditions import merge_conditions
from ..google_types import ApiError
from ..naming import Owner
from .context import Indexes, Operator
from .events import post_transitions


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
        post_transitions(op.events, body, status.get("conditions"), merged, logger)
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
