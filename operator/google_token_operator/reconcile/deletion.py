"""What happens when a GoogleClient or a Branch is deleted, and what is left over from
objects deleted while the operator was away.

ownerReferences let a cluster's garbage collector remove the Secrets; they are deleted here
as well (only those that are the deleted object's own, uid-checked), so nothing lingers where
no garbage collector runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from .. import branches
from ..consent_state import pending as consent
from ..kube import KubeError, WriteFenced
from ..logs import Tagged
from ..naming import (
    ROLE_CONSENT,
    ROLE_CONSUMER,
    ROLE_PRIVATE,
    Key,
    Owner,
    default_token_secret_name,
    is_managed,
    private_secret_name,
)
from ..ownership import Claim
from ..runtime.context import Operator
from ..tokens import record_from_data
from ..unforeseen import unexpected
from ..wakeups import client_of
from .branch_pass import BranchFanOut, reconcile_branch
from .grants import revoke_kept_grant

logger = logging.getLogger(__name__)


async def delete_client(
    op: Operator,
    body: Mapping[str, Any],
    logger: kopf.Logger,
) -> None:
    """Revoke the grant if asked to, remove the client's Secrets and pending consent, and tell
    its Branches that their client is gone. A retryable GoogleError from the revoke
    propagates (kopf retries); Google saying the grant is already gone lets deletion finish."""
    meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
    namespace, name = str(meta["namespace"]), str(meta["name"])
    owner = Owner("GoogleClient", name, namespace, str(meta.get("uid", "")))
    private_key = (namespace, private_secret_name(name))
    view = op.cluster.managed.get(private_key)
    # Only its own private Secret's grant is revoked, not one placed under that name by another.
    own = await op.secrets.judge(private_key, owner, ROLE_PRIVATE)
    if spec.get("revokeOnDelete") is True and view is not None and own.claim is Claim.OURS:
        data = view.private_data
        if data is None:  # the watch keeps no data of it: read it (only if it is the client's)
            data = await op.secrets.read_owned(private_key, owner, ROLE_PRIVATE)
        record = record_from_data(data)
        if record is not None and record.refresh_token:
            await revoke_kept_grant(op, body, record, logger)
    await _delete_token_secrets(op, owner, spec, status)
    await op.secrets.delete_owned(*private_key, owner, ROLE_PRIVATE)
    published = consent.published_from_status(status.get("authorization"))
    if published is not None and published.secret_name:
        await op.secrets.delete_owned(
            op.settings.operator_namespace, published.secret_name, owner, ROLE_CONSENT
        )
    op.metrics.forget("GoogleClient", namespace, name)
    op.cluster.forget_client((namespace, name))
    # Its Branches have no client now: say so (they keep their last token until it expires).
    # Each on its own; a Kubernetes error retries the deletion once all were tried.
    missing = branches.ClientState(exists=False, ready=False)
    told = await BranchFanOut(op, logger).each(
        op.cluster.branches_of((namespace, name)), missing, op.clock()
    )
    if told.kube_error is not None:
        raise told.kube_error


async def delete_branch(op: Operator, body: Mapping[str, Any]) -> None:
    meta = body["metadata"]
    namespace, name = str(meta["namespace"]), str(meta["name"])
    owner = Owner("Branch", name, namespace, str(meta.get("uid", "")))
    await _delete_token_secrets(op, owner, body.get("spec") or {}, body.get("status") or {})
    op.forget_branch(owner.uid)
    op.metrics.forget("Branch", namespace, name)


async def _delete_token_secrets(
    op: Operator, owner: Owner, spec: Mapping[str, Any], status: Mapping[str, Any]
) -> None:
    """Delete the consumer Secret (under its current and its last written name), each only
    if it is `owner`'s consumer Secret."""
    names = {
        str(status.get("tokenSecretName") or ""),
        str(spec.get("tokenSecretName") or default_token_secret_name(owner.name)),
    } - {""}
    for secret in sorted(names):
        await op.secrets.delete_owned(owner.namespace, secret, owner, ROLE_CONSUMER)


# How often expired consent Secrets are looked for.
SWEEP_PERIOD = 300.0


class Janitor:
    """What no GoogleClient's daemon sees: a Branch deleted (its Secret goes), a Branch whose
    GoogleClient does not exist (its status says so), Secrets left by objects deleted while
    the operator was not running, and consent Secrets whose consent expired."""

    def __init__(self, op: Operator, kopf_logger: kopf.Logger | logging.Logger) -> None:
        self.op = op
        self.logger = kopf_logger
        self._queue: asyncio.Queue[tuple[Key, dict[str, Any] | None, dict[str, Any] | None]]
        self._queue = asyncio.Queue()

    def branch_changed(
        self, key: Key, old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> None:
        self._queue.put_nowait((key, old, new))

    async def run(self) -> None:
        await self.op.cluster.synced()
        await self.sweep()
        sweeping = asyncio.create_task(self._sweep_consents_now_and_then())
        try:
            while True:
                key, old, new = await self._queue.get()
                try:
                    await self._handle(old, new)
                except KubeError as error:  # one Branch's trouble must not stop the others
                    Tagged(logger, "Branch", *key).warning(f"Branch not handled: {error}")
                except Exception as error:
                    Tagged(logger, "Branch", *key).error(f"Branch not handled: {unexpected(error)}")
        finally:
            sweeping.cancel()

    async def _sweep_consents_now_and_then(self) -> None:
        while True:
            try:
                await self.sweep_expired_consents()
            except KubeError as error:
                logger.warning(f"Sweeping expired consent Secrets failed: {error}")
            await asyncio.sleep(SWEEP_PERIOD)

    async def sweep_expired_consents(self) -> int:
        """Delete the consent Secrets whose consent expired (uid-checked); how many."""
        namespace, now, swept = self.op.settings.operator_namespace, self.op.clock(), 0
        for (secret_namespace, name), seen in self.op.cluster.secret_meta.items():
            if secret_namespace == namespace and consent.expired_state(seen.labels, now):
                swept += await self._delete_leftover(namespace, name, seen.uid)
        return swept

    async def _delete_leftover(self, namespace: str, name: str, uid: str) -> int:
        """Delete one Secret (uid-checked); one that fails is left for the next sweep, and
        the others go on."""
        try:
            return await self.op.kube.delete_secret(namespace, name, uid=uid)
        except WriteFenced:
            raise
        except KubeError as error:
            logger.warning(f"Deleting Secret {namespace}/{name} failed: {error}")
            return 0

    async def _handle(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        cluster = self.op.cluster
        if new is None:
            if old is not None:
                await delete_branch(self.op, old)
            return
        if client_of(new) not in cluster.clients:
            missing = branches.ClientState(exists=False, ready=False)
            await reconcile_branch(self.op, new, missing, self.op.clock(), self.logger)

    async def sweep(self) -> None:
        """Delete managed Secrets whose owning object is gone (uid-checked), and report the
        Branches that have no GoogleClient."""
        cluster = self.op.cluster
        live = {meta.uid for _, meta in cluster.clients.items()}
        live |= {str(branch["metadata"].get("uid")) for _, branch in cluster.branches.items()}
        for (namespace, name), seen in cluster.secret_meta.items():
            # As the garbage collector would: a managed Secret all of whose owners are gone.
            if not is_managed(seen.labels) or not seen.owner_uids or set(seen.owner_uids) & live:
                continue
            await self._delete_leftover(namespace, name, seen.uid)
        for key, branch in cluster.branches.items():
            if client_of(branch) not in cluster.clients:
                self.branch_changed(key, None, branch)
