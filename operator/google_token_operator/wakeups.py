"""What wakes a GoogleClient's pass (pure): one predicate per kind, over the plain views the
watches keep, like cert-manager's predicates. Each lets through only a change of what a pass
reads; the operator's own writes, already recorded by this process, wake nobody.

- GoogleClient: its generation (spec), its deletion and its request annotations; not its
  status (the pass's own write) nor its other metadata.
- Branch: what the pass reads of it: spec, identity, generation, deletion, and its status
  (the status base, the last location check and the previous Secret name come from there)
  only while this process has written none to it: once it has, the pass starts from the
  status it wrote (runtime.context.status_base), whatever the watch shows. Never its
  resourceVersion alone. It wakes the client it names, and the one it named before.
- Secret: only the clients whose pass reads it. Of the metadata-only view, any change: besides
  whose it is (uid, labels, owners), a pass reads its version (a new one is all it sees of new
  credentials; the Secret writer checks its writes against it). Of a managed Secret's view,
  its data, not its version alone (the metadata-only view tells of that). Never a version
  this process wrote.

runtime.cluster and the kopf handlers apply these; they hold no rule of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .day2 import ANNOTATIONS
from .naming import Key
from .views import SecretMeta, SecretView

# What of a GoogleClient's metadata calls for a pass (see client_essence).
ClientEssence = tuple[Any, ...]


def client_essence(meta: Mapping[str, Any]) -> ClientEssence:
    """The part of a GoogleClient's metadata a change of which wakes its pass."""
    annotations = meta.get("annotations") or {}
    return (
        meta.get("generation"),
        meta.get("deletionTimestamp"),
        tuple(sorted((k, v) for k, v in annotations.items() if k in ANNOTATIONS)),
    )


def client_wakes(seen: ClientEssence | None, now: ClientEssence) -> bool:
    """Does a GoogleClient event showing `now` wake its pass (`seen`: the essence last seen)?"""
    return seen != now


def only_unread_changed(
    essence: ClientEssence, status: Mapping[str, Any], fresh: Mapping[str, Any]
) -> bool:
    """Has a GoogleClient, read again as `fresh`, changed since a pass began from `essence`
    and `status` only in what no pass reads (kopf's finalizer, labels): the status the pass
    made from them is still right."""
    meta = fresh.get("metadata") or {}
    return not client_wakes(essence, client_essence(meta)) and (fresh.get("status") or {}) == status


def client_of(branch: Mapping[str, Any]) -> Key:
    """(namespace, clientRef.name); a Branch written around its schema names no client."""
    spec = branch.get("spec")
    ref = spec.get("clientRef") if isinstance(spec, Mapping) else None
    name = ref.get("name") if isinstance(ref, Mapping) else None
    namespace = str((branch.get("metadata") or {}).get("namespace") or "")
    return (namespace, str(name or ""))


def _branch_read(branch: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a pass reads of a Branch snapshot (views.snapshot), status and version aside."""
    meta = {k: v for k, v in (branch.get("metadata") or {}).items() if k != "resourceVersion"}
    return branch.get("apiVersion"), branch.get("kind"), meta, branch.get("spec")


def branch_wakes(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    own_status: Mapping[str, Any] | None,
) -> frozenset[Key]:
    """The clients to wake for a Branch change from `old` to `new` (None: absent);
    `own_status`: the status this process last wrote to that Branch, if any (the pass reads
    that one instead of the watched status)."""
    if old is None or new is None or client_of(old) != client_of(new):
        return frozenset(client_of(view) for view in (old, new) if view is not None)
    unread = own_status is not None or new.get("status") == old.get("status")
    if unread and _branch_read(old) == _branch_read(new):
        return frozenset()
    return frozenset({client_of(new)})


def secret_changed(
    old: SecretMeta | SecretView | None, new: SecretMeta | SecretView | None
) -> bool:
    """Did a pass-read part of a Secret change between two views of one watch (None: absent)?"""
    if old is None or new is None:
        return old is not new
    if isinstance(old, SecretMeta) and isinstance(new, SecretMeta):
        return old != new
    if isinstance(old, SecretView) and isinstance(new, SecretView):
        return (old.uid, old.data_hash, old.data_keys, old.private_data) != (
            new.uid,
            new.data_hash,
            new.data_keys,
            new.private_data,
        )
    return True


def secret_wakes(
    old: SecretMeta | SecretView | None, new: SecretMeta | SecretView | None, *, own: bool
) -> bool:
    """Does a Secret change wake the clients whose pass reads that Secret? Not when it is
    this process's own write (`own`: the new version is the one it wrote), nor when nothing a
    pass reads changed."""
    return not own and secret_changed(old, new)
