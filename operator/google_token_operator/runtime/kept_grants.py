"""The grants the operator keeps, and whether a revoke may go to Google (grant_sharing decides).

Only the operator's own private Secrets count: role private, named for a live GoogleClient and
owned by that very object (views.owned_private), so a Secret carrying the operator's labels
that a tenant made can neither block a revoke nor cause one. The leader reads them from its
watch (which keeps the data of exactly those Secrets); the consent API, which serves on every
replica and watches nothing, lists them (a revoke there is rare: a refused or unstored consent,
a replaced grant). Only (client id, account) pairs are kept from what is read.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .. import MANAGED_BY
from ..grant_sharing import GrantPair, KeptGrant, RevokeVerdict, kept_grant, revoke_verdict
from ..naming import MANAGED_BY_LABEL, ROLE_LABEL, ROLE_PRIVATE, Key, private_secret_name
from ..tokens import TokenRecord, record_from_data
from ..views import owned_private
from .context import Operator

logger = logging.getLogger(__name__)

PRIVATE_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY},{ROLE_LABEL}={ROLE_PRIVATE}"


def holder_of(secret_key: Key) -> Key:
    """The GoogleClient a private Secret (already judged owned_private) belongs to."""
    namespace, name = secret_key
    return namespace, name[: -len(private_secret_name(""))]


def watched_grants(op: Operator) -> list[KeptGrant]:
    """The grants in the leader's watch: the private Secrets whose data it keeps, each still
    owned by the live GoogleClient of its name (one deleted and made again has a new uid)."""
    cluster = op.cluster
    grants = []
    for key, view in cluster.managed.items():
        if view.private_data is None:
            continue
        holder = holder_of(key)
        client, meta = cluster.clients.get(holder), cluster.secret_meta.get(key)
        if client is None or meta is None or client.uid not in meta.owner_uids:
            continue
        grant = kept_grant(holder, record_from_data(view.private_data))
        if grant is not None:
            grants.append(grant)
    return grants


async def listed_grants(op: Operator) -> list[KeptGrant]:
    """The grants, read by LIST (the consent API has no watch): private Secrets judged as the
    watch judges them, against the GoogleClients listed now."""
    namespaces: list[str | None] = list(op.settings.watch_namespaces) or [None]
    uids: dict[Key, str] = {}
    secrets: list[dict[str, Any]] = []
    for namespace in namespaces:
        for client in await op.kube.list_resources("googleclients", namespace):
            meta = client.get("metadata") or {}
            uids[(str(meta.get("namespace")), str(meta.get("name")))] = str(meta.get("uid") or "")
        secrets += await op.kube.list_secrets(namespace, PRIVATE_SELECTOR)
    grants = []
    for body in secrets:
        if not owned_private(body, lambda key: uids.get(key, "")):
            continue
        meta = body["metadata"]
        holder = holder_of((str(meta["namespace"]), str(meta["name"])))
        grant = kept_grant(holder, record_from_data(_data(body)))
        if grant is not None:
            grants.append(grant)
    return grants


def _data(body: Mapping[str, Any]) -> Mapping[str, str] | None:
    data = body.get("data")
    return data if isinstance(data, dict) else None


async def may_revoke(
    op: Operator,
    holder: Key,
    record: TokenRecord,
    what: str = "the grant",
    *,
    kept_by_holder: bool = True,
) -> RevokeVerdict:
    """May a grant (`record`) of `holder` be revoked at Google, given every grant kept now?
    (grant_sharing.revoke_verdict)"""
    kept = watched_grants(op) if op.view is not None else await listed_grants(op)
    return revoke_verdict(holder, GrantPair.of(record), kept, what, kept_by_holder=kept_by_holder)
