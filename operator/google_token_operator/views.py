"""What the operator knows about the cluster without asking it: kopf index entries.

kopf keeps these up to date from its watch streams, so a reconcile reads them instead of
listing or getting objects. Index functions are pure: body in, small snapshot out.
Consumer Secrets are remembered by a digest of their data only; only the private Secret's
data (which the operator needs to refresh) is held in memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from .builders import content_hash
from .naming import ROLE_LABEL, ROLE_PRIVATE, Key

V = TypeVar("V")


@dataclasses.dataclass(frozen=True)
class SecretView:
    namespace: str
    name: str
    resource_version: str
    data_hash: str
    private_data: Mapping[str, str] | None


def managed_secret_view(body: Mapping[str, Any]) -> SecretView:
    meta = body.get("metadata", {})
    labels = meta.get("labels") or {}
    data = body.get("data") or {}
    role = str(labels.get(ROLE_LABEL, ""))
    return SecretView(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        resource_version=str(meta.get("resourceVersion", "")),
        data_hash=content_hash(data),
        private_data=dict(data) if role == ROLE_PRIVATE else None,
    )


def snapshot(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a custom resource a reconcile needs (a plain, detached copy)."""
    meta = body.get("metadata", {})
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {
            key: meta.get(key)
            for key in ("name", "namespace", "uid", "generation", "deletionTimestamp")
        },
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }


def first(index: Mapping[Key, Iterable[V]], key: Key) -> V | None:
    """The one value an index holds under a key (kopf stores a collection per key)."""
    for value in index.get(key, ()):
        return value
    return None
