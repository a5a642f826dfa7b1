"""Writing and deleting the operator's Secrets — only its own, for the very object they serve.

Before any write or delete the Secret's owner and role are checked (ownership.claim) against
what the watch shows, so no GET precedes a write: whatever name a spec or status gives, a
consumer write never lands on a private Secret and a consumer clean-up never deletes one.
An update is a JSON patch that first tests the uid and resourceVersion read, so it never
lands on another object or over a change it did not see (a consumer Secret's labels and
annotations, which its template sets, are written with its data); when the test fails the Secret is
read once and judged again. A delete carries the uid as a
precondition. Whatever is not the operator's is reported as a conflict and left untouched.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any, Protocol

from .. import MANAGED_BY
from ..builders import written_hash
from ..kube import KubeError
from ..metrics import Metrics
from ..naming import MANAGED_BY_LABEL, ROLE_CONSUMER, ROLE_LABEL, Key, Owner
from ..ownership import Claim, Verdict, claim
from ..views import SecretMeta, SecretView, managed_secret_view, secret_meta
from .cluster import ClusterView
from .memory import SecretWrite, WriteMemory


class Written(enum.Enum):
    WROTE = "wrote"
    UNCHANGED = "unchanged"
    CONFLICT = "conflict"


@dataclasses.dataclass(frozen=True)
class WriteResult:
    outcome: Written
    why: str = ""  # for CONFLICT: why the Secret is not this object's


class SecretApi(Protocol):
    """What the writer asks of the Kubernetes API (kube.Kube)."""

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def create_secret(self, body: Mapping[str, Any]) -> dict[str, Any]: ...

    async def patch_secret(
        self, namespace: str, name: str, operations: list[dict[str, Any]]
    ) -> dict[str, Any]: ...

    async def delete_secret(
        self, namespace: str, name: str, *, uid: str, resource_version: str | None = None
    ) -> bool: ...


class SecretWriter:
    def __init__(
        self, kube: SecretApi, view: ClusterView | None, metrics: Metrics, memory: WriteMemory
    ) -> None:
        self.kube = kube
        self.view = view
        self.metrics = metrics
        # Shared with the view, which forgets there what was deleted and asks what is own.
        self._memory = memory

    async def ensure(self, desired: Mapping[str, Any], owner: Owner, role: str) -> WriteResult:
        """Make the Secret hold `desired`'s data, if it is (or can become) `owner`'s."""
        meta = desired["metadata"]
        key = (str(meta["namespace"]), str(meta["name"]))
        want = written_hash(desired)
        seen, view = await self._lookup(key)
        seen = self._or_written(key, seen, owner, meta.get("labels") or {})
        verdict = claim(seen, owner, role, key[1])
        if verdict.claim is Claim.FOREIGN:
            return WriteResult(Written.CONFLICT, verdict.why)
        if verdict.claim is Claim.OURS:
            assert seen is not None
            if self._unchanged(key, seen, view, want):
                return WriteResult(Written.UNCHANGED)
            return await self._update(key, seen, desired, owner, role, want, retry=True)
        try:
            created = await self.kube.create_secret(desired)
        except KubeError as error:
            if error.status != 409:
                raise
            return await self._judge_again(key, desired, owner, role, want)
        self._remember(key, "", created, want, role)
        return WriteResult(Written.WROTE)

    async def judge(self, key: Key, owner: Owner, role: str) -> Verdict:
        """Is the Secret `owner`'s in `role`, as a write or delete would judge it now?"""
        seen, _ = await self._lookup(key)
        labels = {MANAGED_BY_LABEL: MANAGED_BY}
        return claim(self._or_written(key, seen, owner, labels), owner, role, key[1])

    async def delete_owned(self, namespace: str, name: str, owner: Owner, role: str) -> bool:
        """Delete the Secret if it is `owner`'s in `role` (uid precondition); True if this
        call did."""
        key = (namespace, name)
        seen, _ = await self._lookup(key)
        memory = self._memory.secret(key)
        if seen is None and memory is not None:  # created by this process; not yet watched
            if memory.role != role:
                return False
            self._memory.forget(key)
            return await self.kube.delete_secret(namespace, name, uid=memory.uid)
        if claim(seen, owner, role, name).claim is not Claim.OURS:
            return False
        assert seen is not None
        self._memory.forget(key)
        return await self.kube.delete_secret(namespace, name, uid=seen.uid)

    async def read_owned(self, key: Key, owner: Owner, role: str) -> Mapping[str, str] | None:
        """The Secret's data as the API server has it now (not as watched), if it is
        `owner`'s in `role`; None otherwise."""
        return (await self.read_owned_at(key, owner, role))[1]

    async def read_owned_at(
        self, key: Key, owner: Owner, role: str
    ) -> tuple[str, Mapping[str, str] | None]:
        """(the resourceVersion read, "" when there is no such Secret; its data as read_owned
        gives it), for a caller that reads again only once the version changed."""
        current = await self.kube.get_secret(*key)
        if current is None:
            return "", None
        version = str(current["metadata"].get("resourceVersion") or "")
        if claim(secret_meta(current), owner, role, key[1]).claim is not Claim.OURS:
            return version, None
        return version, dict(current.get("data") or {})

    def lags(self, key: Key) -> bool:
        """True while the watch still shows the Secret as it was before this process wrote it."""
        memory = self._memory.secret(key)
        if memory is None or self.view is None:
            return False
        view = self.view.managed.get(key)
        return view is None or view.resource_version != memory.version_after

    # -- internals ------------------------------------------------------------------------------

    def _or_written(
        self, key: Key, seen: SecretMeta | None, owner: Owner, labels: Mapping[str, str]
    ) -> SecretMeta | None:
        """What is seen of the Secret, or what this process created there when the watch has
        not shown it yet: in the role it was written in, not the one asked for now."""
        memory = self._memory.secret(key)
        if seen is not None or memory is None:
            return seen
        written = {**dict(labels), ROLE_LABEL: memory.role}
        return SecretMeta(memory.uid, memory.version_after, written, (owner.uid,))

    async def _lookup(self, key: Key) -> tuple[SecretMeta | None, SecretView | None]:
        if self.view is not None:
            return self.view.secret_meta.get(key), self.view.managed.get(key)
        current = await self.kube.get_secret(*key)
        if current is None:
            return None, None
        return secret_meta(current), managed_secret_view(current)

    def _unchanged(self, key: Key, seen: SecretMeta, view: SecretView | None, want: str) -> bool:
        memory = self._memory.secret(key)
        if (
            memory is not None
            and memory.uid == seen.uid
            and seen.resource_version in (memory.version_before, memory.version_after)
        ):
            # The watch shows this process's last write, or has not caught up with it yet.
            return memory.data_hash == want
        if view is not None and view.resource_version == seen.resource_version:
            return view.data_hash == want
        return False

    async def _update(
        self,
        key: Key,
        seen: SecretMeta,
        desired: Mapping[str, Any],
        owner: Owner,
        role: str,
        want: str,
        *,
        retry: bool,
    ) -> WriteResult:
        operations: list[dict[str, Any]] = [
            {"op": "test", "path": "/metadata/uid", "value": seen.uid},
            {"op": "test", "path": "/metadata/resourceVersion", "value": seen.resource_version},
            {"op": "replace", "path": "/data", "value": dict(desired.get("data") or {})},
        ]
        if role == ROLE_CONSUMER:
            # A template's labels and annotations are written as wholes, like the data: one
            # the template dropped goes, and the Secret comes back to what the template says.
            meta = desired.get("metadata") or {}
            operations += [
                {"op": "add", "path": f"/metadata/{field}", "value": dict(meta.get(field) or {})}
                for field in ("labels", "annotations")
            ]
        try:
            updated = await self.kube.patch_secret(key[0], key[1], operations)
        except KubeError as error:
            if error.status == 404 and retry:
                return await self._judge_again(key, desired, owner, role, want)
            if error.status not in (409, 422):
                raise
            if not retry:
                return WriteResult(Written.CONFLICT, f"the API server refused the update: {error}")
            return await self._judge_again(key, desired, owner, role, want)
        self._remember(key, seen.resource_version, updated, want, role)
        return WriteResult(Written.WROTE)

    async def _judge_again(
        self, key: Key, desired: Mapping[str, Any], owner: Owner, role: str, want: str
    ) -> WriteResult:
        """The watch was behind: read the Secret once, judge its owner again, write once."""
        current = await self.kube.get_secret(*key)
        if current is None:
            try:
                created = await self.kube.create_secret(desired)
            except KubeError as error:
                if error.status == 409:
                    return WriteResult(Written.CONFLICT, "another writer keeps creating it")
                raise
            self._remember(key, "", created, want, role)
            return WriteResult(Written.WROTE)
        seen = secret_meta(current)
        verdict = claim(seen, owner, role, key[1])
        if verdict.claim is not Claim.OURS:
            return WriteResult(Written.CONFLICT, verdict.why)
        if managed_secret_view(current).data_hash == want:
            return WriteResult(Written.UNCHANGED)
        return await self._update(key, seen, desired, owner, role, want, retry=False)

    def _remember(
        self, key: Key, before: str, written: Mapping[str, Any], want: str, role: str
    ) -> None:
        meta = written.get("metadata") or {}
        self._memory.remember_secret(
            key,
            SecretWrite(
                uid=str(meta.get("uid") or ""),
                version_before=before,
                version_after=str(meta.get("resourceVersion") or ""),
                data_hash=want,
                role=role,
            ),
        )
        self.metrics.secret_writes.labels(role).inc()
