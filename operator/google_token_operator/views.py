"""What the operator keeps of each watched object: small, detached views (pure functions).

The informers (kube.informer) hold one view per object, so a pass reads them instead of
listing or getting objects. Unrelated Secrets are seen as metadata only and kept as a few
strings; Secrets with the managed-by label (a label anyone can set) by a digest of their data.
Data is held in memory only for the private Secret of a live GoogleClient (the one the
operator refreshes from): a tenant's labelled Secrets cost the operator a few strings each.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from . import GROUP
from .builders import written_hash
from .naming import MANAGED_BY_LABEL, ROLE_LABEL, ROLE_PRIVATE, Key, private_secret_name


@dataclasses.dataclass(frozen=True)
class SecretMeta:
    """Any Secret, as a metadata-only watch shows it: enough to tell whose it is."""

    uid: str
    resource_version: str
    # Only the operator's own labels (managed-by and the google-token-operator.dev/ ones).
    labels: Mapping[str, str]
    owner_uids: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class SecretView:
    """A Secret carrying the managed-by label, as a label-selected watch shows it."""

    uid: str
    resource_version: str
    data_hash: str  # builders.written_hash: the data, and a consumer Secret's template metadata
    data_keys: frozenset[str]
    # Only for the private Secret of a live GoogleClient (see owned_private); None otherwise,
    # also for a private Secret whose client was not known yet (read it when needed).
    private_data: Mapping[str, str] | None


def secret_meta(body: Mapping[str, Any]) -> SecretMeta:
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    return SecretMeta(
        uid=str(meta.get("uid") or ""),
        resource_version=str(meta.get("resourceVersion") or ""),
        labels={
            str(k): str(v)
            for k, v in labels.items()
            if k == MANAGED_BY_LABEL or str(k).startswith(f"{GROUP}/")
        },
        owner_uids=tuple(str(ref.get("uid") or "") for ref in meta.get("ownerReferences") or []),
    )


def no_client(key: Key) -> str:
    return ""


def owned_private(body: Mapping[str, Any], client_uid: Callable[[Key], str]) -> bool:
    """Is `body` the private Secret of a live GoogleClient: role private, named for a client
    whose uid (`client_uid` of its key; "" when there is none) is among its owners? At most
    one Secret per GoogleClient passes, whatever labels and owners tenants write."""
    meta = body.get("metadata") or {}
    if (meta.get("labels") or {}).get(ROLE_LABEL) != ROLE_PRIVATE:
        return False
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    suffix = private_secret_name("")
    if not name.endswith(suffix):
        return False
    uid = client_uid((namespace, name[: -len(suffix)]))
    owners = meta.get("ownerReferences") or []
    return bool(uid) and any(str(ref.get("uid") or "") == uid for ref in owners)


def managed_secret_view(
    body: Mapping[str, Any], client_uid: Callable[[Key], str] = no_client
) -> SecretView:
    """The view of a Secret with the managed-by label; its data is kept only when
    owned_private says so (`client_uid`: the uid of the live GoogleClient of a key)."""
    meta = body.get("metadata") or {}
    data = body.get("data") or {}
    return SecretView(
        uid=str(meta.get("uid") or ""),
        resource_version=str(meta.get("resourceVersion") or ""),
        data_hash=written_hash(body),
        data_keys=frozenset(data),
        private_data=dict(data) if owned_private(body, client_uid) else None,
    )


@dataclasses.dataclass(frozen=True)
class ObjectMeta:
    """A custom resource as a metadata-only watch shows it: that it exists, and its uid."""

    uid: str


def object_meta(body: Mapping[str, Any]) -> ObjectMeta:
    return ObjectMeta(uid=str((body.get("metadata") or {}).get("uid") or ""))


def snapshot(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a custom resource a pass needs (a plain, detached copy)."""
    meta = body.get("metadata") or {}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {
            key: meta.get(key)
            for key in (
                "name",
                "namespace",
                "uid",
                "generation",
                "deletionTimestamp",
                "resourceVersion",
            )
        },
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }
