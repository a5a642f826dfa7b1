"""What happens when a GoogleClient or a Branch is deleted.

ownerReferences let a cluster's garbage collector remove the Secrets too; they are deleted
explicitly as well, so nothing lingers where no garbage collector runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import kopf

from .. import branches
from ..naming import default_token_secret_name, private_secret_name
from ..tokens import record_from_data
from ..views import first
from .branch_pass import reconcile_branch
from .context import Indexes, Operator


async def delete_client(
    op: Operator,
    namespace: str,
    name: str,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    indexes: Indexes,
    logger: kopf.Logger,
) -> None:
    """Revoke the grant if asked to, remove the client's Secrets and pending consent, and tell
    its Branches that their client is gone. A GoogleError from the revoke propagates (retry)."""
    private = first(indexes.managed_secrets, (namespace, private_secret_name(name)))
    if spec.get("revokeOnDelete") and private is not None:
        record = record_from_data(private.private_data)
        if record is not None and record.refresh_token:
            await op.google.revoke(record.refresh_token)
            logger.info("Revoked the grant at Google")
    await _delete_token_secrets(op, namespace, name, spec, status, private_secret_name(name))
    state_secret = (status.get("authorization") or {}).get("stateSecretName")
    if state_secret:
        await op.kube.delete_secret(op.settings.operator_namespace, str(state_secret))
    op.metrics.forget("GoogleClient", namespace, name)
    # Its Branches have no client now: say so (they keep their last token until it expires).
    missing = branches.ClientState(exists=False, ready=False)
    now: dt.datetime = op.clock()
    for branch in list(indexes.branches_by_client.get((namespace, name), ())):
        await reconcile_branch(op, branch, missing, indexes, now, logger)


async def delete_branch(
    op: Operator,
    namespace: str,
    name: str,
    uid: str,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
) -> None:
    await _delete_token_secrets(op, namespace, name, spec, status)
    op.forget_branch(uid)
    op.metrics.forget("Branch", namespace, name)


async def _delete_token_secrets(
    op: Operator,
    namespace: str,
    name: str,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    extra: str = "",
) -> None:
    """Delete the consumer Secret (under its current and its last written name) and `extra`."""
    names = {
        str(status.get("tokenSecretName") or ""),
        str(spec.get("tokenSecretName") or default_token_secret_name(name)),
        extra,
    } - {""}
    for secret in names:
        await op.kube.delete_secret(namespace, secret)
        op.forget_secret((namespace, secret))
