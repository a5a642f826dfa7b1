"""The operator's picture of the cluster: four list-and-watch caches, and who to wake when
something a pass depends on changes.

- `secret_meta`: every Secret in the watched namespaces, metadata only (whose is it, which
  version) — the credentials Secrets, and anything that sits under a name the operator wants;
- `managed`: the Secrets carrying the managed-by label, with a digest of their data (and the
  data of each live GoogleClient's private Secret, nothing else: views.owned_private); it
  lists after `clients` has, so that it knows whose private Secret is whose;
- `branches`: every Branch; `clients`: every GoogleClient, metadata only (does it exist).

Each pass registers the Secrets it read or wanted (`depend`); a change to any of them wakes
that GoogleClient's daemon, and a change to a Branch wakes its client's, as far as the
predicates of `wakeups` let the change through (what a pass reads; not the operator's own
writes, which `own` records). A pass registers at its end what it came to read, so a Secret
that changed while the pass ran, after being read, wakes the pass again at its end
(`pass_running`): no change is missed for being early. A change that comes while its client's
pass runs is judged at the pass's end, once the pass has recorded what it wrote.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from .. import GROUP, MANAGED_BY, VERSION
from ..kube.informer import FULL_SECRET_PAGE_SIZE, Informer, WatchApi
from ..naming import MANAGED_BY_LABEL, Key
from ..views import (
    ObjectMeta,
    SecretMeta,
    SecretView,
    managed_secret_view,
    object_meta,
    secret_meta,
    snapshot,
)
from ..wakeups import branch_wakes, client_of, secret_wakes


class Wakeups:
    """One asyncio.Event per GoogleClient: set it and the client's daemon runs a pass now."""

    def __init__(self) -> None:
        self._events: dict[Key, asyncio.Event] = {}

    def event(self, key: Key) -> asyncio.Event:
        return self._events.setdefault(key, asyncio.Event())

    def wake(self, key: Key) -> None:
        self.event(key).set()

    def drop(self, key: Key) -> None:
        self._events.pop(key, None)


def collection_paths(namespaces: Sequence[str], core: bool, plural: str) -> list[str]:
    """One list/watch path per namespace, or the cluster-wide one when `namespaces` is empty."""
    prefix = "/api/v1" if core else f"/apis/{GROUP}/{VERSION}"
    if not namespaces:
        return [f"{prefix}/{plural}"]
    return [f"{prefix}/namespaces/{namespace}/{plural}" for namespace in namespaces]


class OwnWrites(Protocol):
    """What this process wrote itself (runtime.memory.WriteMemory)."""

    def wrote(self, key: Key, version: str) -> bool: ...

    def forget(self, key: Key) -> None: ...

    def branch_status(self, uid: str) -> Mapping[str, Any] | None: ...


class ClusterView:
    # How many remembered changes make the next pass end drop those no running pass needs.
    PRUNE_MIN = 1024

    def __init__(
        self,
        kube: WatchApi,
        watch_namespaces: Sequence[str],
        operator_namespace: str,
        own: OwnWrites,
        on_branch_change: Callable[[Key, dict[str, Any] | None, dict[str, Any] | None], None]
        | None = None,
    ) -> None:
        self.wakeups = Wakeups()
        self._own = own
        self._depends: dict[Key, set[Key]] = collections.defaultdict(set)
        self._depended: dict[Key, set[Key]] = {}
        self._branches_of: dict[Key, set[Key]] = collections.defaultdict(set)
        self._on_branch_change = on_branch_change
        # Change numbers: the last change of each Secret, kept while a pass that began before
        # it runs; and the change number each running pass began at.
        self._changes = 0
        self._changed_at: dict[Key, int] = {}
        self._passes: dict[Key, int] = {}
        self._prune_at = self.PRUNE_MIN
        # Branch changes that came while their client's pass ran: each Branch as it was
        # before the first of them, judged when that pass ends.
        self._branches_before: dict[Key, dict[Key, dict[str, Any] | None]] = {}
        # Consent state lives in the operator's namespace, watched even when it is not one of
        # the namespaces the GoogleClients are in.
        secret_namespaces = (
            sorted({*watch_namespaces, operator_namespace}) if watch_namespaces else []
        )
        self.secret_meta: Informer[SecretMeta] = Informer(
            kube,
            "Secrets (metadata)",
            collection_paths(secret_namespaces, True, "secrets"),
            secret_meta,
            metadata_only=True,
            on_change=self._secret_changed,
        )
        self.managed: Informer[SecretView] = Informer(
            kube,
            "managed Secrets",
            collection_paths(secret_namespaces, True, "secrets"),
            self._managed_view,
            label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY}",
            page_size=FULL_SECRET_PAGE_SIZE,
            # The two Secret watches lag each other: a pass woken by one may still find the
            # other behind, so either one wakes it.
            on_change=self._secret_changed,
        )
        self.branches: Informer[dict[str, Any]] = Informer(
            kube,
            "Branches",
            collection_paths(watch_namespaces, False, "branches"),
            snapshot,
            on_change=self._branch_changed,
        )
        self.clients: Informer[ObjectMeta] = Informer(
            kube,
            "GoogleClients (metadata)",
            collection_paths(watch_namespaces, False, "googleclients"),
            object_meta,
            metadata_only=True,
        )

    @property
    def informers(self) -> tuple[Informer[Any], ...]:
        return (self.secret_meta, self.managed, self.branches, self.clients)

    async def run(self) -> None:
        others = (informer.run() for informer in self.informers if informer is not self.managed)
        await asyncio.gather(self._run_managed(), *others)

    async def _run_managed(self) -> None:
        # Listed once the GoogleClients are known, so their private Secrets keep their data
        # (any other is read when a pass needs it).
        await self.clients.synced.wait()
        await self.managed.run()

    def _managed_view(self, body: dict[str, Any]) -> SecretView:
        return managed_secret_view(body, self._client_uid)

    def _client_uid(self, key: Key) -> str:
        client = self.clients.get(key)
        return client.uid if client is not None else ""

    async def synced(self) -> None:
        """Return once every cache has listed what exists."""
        for informer in self.informers:
            await informer.synced.wait()

    # Dependencies and wake-ups ---------------------------------------------------------------

    def depend(self, client: Key, secrets: Iterable[Key]) -> None:
        """`client`'s pass depends on these Secrets (replacing what it depended on before)."""
        wanted = set(secrets)
        for key in self._depended.get(client, set()) - wanted:
            self._depends[key].discard(client)
            if not self._depends[key]:
                del self._depends[key]
        for key in wanted:
            self._depends[key].add(client)
        self._depended[client] = wanted

    @contextlib.contextmanager
    def pass_running(self, client: Key) -> Iterator[None]:
        """Around one pass of `client`: if a Secret the pass depends on at its end, or one of
        its Branches, changed after it began (and not by its own writes), wake it again (it
        may have read them before the change)."""
        began = self._passes[client] = self._changes
        try:
            yield
        finally:
            self._passes.pop(client, None)
            depended = self._depended.get(client, ())
            changed = [key for key in depended if self._changed_at.get(key, began) > began]
            branch_news = self._branch_news(client)
            if branch_news or not all(self._shows_own_write(key) for key in changed):
                self.wakeups.wake(client)
            self._forget_old_changes()

    def _shows_own_write(self, key: Key) -> bool:
        views = [view for view in (self.secret_meta.get(key), self.managed.get(key)) if view]
        return bool(views) and all(self._own.wrote(key, view.resource_version) for view in views)

    def _branch_news(self, client: Key) -> bool:
        """Did a Branch that changed while `client`'s pass ran change in what the pass reads?
        Judged at the pass's end, once it has recorded the statuses it wrote."""
        for key, before in self._branches_before.pop(client, {}).items():
            now = self.branches.get(key)
            if client in branch_wakes(before, now, self._own_status(now)):
                return True
        return False

    def _own_status(self, branch: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        uid = str((branch or {}).get("metadata", {}).get("uid") or "")
        return self._own.branch_status(uid) if uid else None

    def _wake_or_defer(self, client: Key, branch: Key, before: dict[str, Any] | None) -> None:
        """Wake `client` now, or, while its pass runs, judge the Branch again at its end."""
        if client in self._passes:
            self._branches_before.setdefault(client, {}).setdefault(branch, before)
        else:
            self.wakeups.wake(client)

    def _forget_old_changes(self) -> None:
        if not self._passes:
            self._changed_at.clear()
        elif len(self._changed_at) >= self._prune_at:
            oldest = min(self._passes.values())
            self._changed_at = {k: n for k, n in self._changed_at.items() if n > oldest}
            self._prune_at = max(self.PRUNE_MIN, 2 * len(self._changed_at))

    def forget_client(self, client: Key) -> None:
        self.depend(client, ())
        self._depended.pop(client, None)
        self.wakeups.drop(client)

    def branches_of(self, client: Key) -> list[dict[str, Any]]:
        found = (self.branches.get(key) for key in sorted(self._branches_of.get(client, ())))
        return [branch for branch in found if branch is not None]

    def _secret_changed(self, key: Key, old: Any, new: Any) -> None:
        if new is None:  # gone: whatever this process wrote there is history
            self._own.forget(key)
        own = new is not None and self._own.wrote(key, new.resource_version)
        if not secret_wakes(old, new, own=own):
            return
        self._changes += 1
        if self._passes:
            self._changed_at[key] = self._changes
        # A pass running now is woken by its end (`pass_running`), once it knows its writes.
        for client in self._depends.get(key, set()) - self._passes.keys():
            self.wakeups.wake(client)

    def _branch_changed(
        self, key: Key, old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> None:
        for view in (old, new):
            if view is not None:
                self._branches_of[client_of(view)].discard(key)
        if new is not None:
            self._branches_of[client_of(new)].add(key)
        for client in branch_wakes(old, new, self._own_status(new)):
            self._wake_or_defer(client, key, old)
        if self._on_branch_change is not None:
            self._on_branch_change(key, old, new)
