"""What every pass shares: settings, the Kubernetes and Google edges, the cluster's picture,
the Secret writer, and small in-memory caches."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from ..metrics import Metrics
from ..naming import Key
from ..settings import Settings
from ..tokens import decode_data
from .cluster import ClusterView
from .edges import GoogleApi, KubeApi, WebhookApi
from .events import EventSink, KubeEvents
from .memory import WriteMemory
from .secrets import SecretWriter

Clock = Callable[[], dt.datetime]
PASSES_AT_ONCE = 64


@dataclasses.dataclass(frozen=True)
class StatusBase:
    """A status a pass starts from, and the resourceVersion of the object that had it: the
    status patch carries that version, so the API server refuses it (StatusConflict) when
    anyone changed the object since."""

    status: dict[str, Any]
    version: str


def status_base(body: Mapping[str, Any], written: StatusBase | None) -> StatusBase:
    """What a pass over `body` starts from, given the status this process wrote last.

    A body showing that very status is at least as new as the write (a spec or annotation
    change since is in it): its version. A body showing another status lags the write (the
    watch has not caught up) or someone else wrote it: the write's version, so that a foreign
    write makes the patch conflict and the pass read the object again."""
    meta = body.get("metadata") or {}
    shown = StatusBase(dict(body.get("status") or {}), str(meta.get("resourceVersion") or ""))
    if written is None or written.status == shown.status:
        return shown
    return written


class Operator:
    """Shared state of the running operator. `view` is None where nothing is watched (the
    consent API of a standby replica): Secrets are then read with a GET. `memory` is the one
    `view` was made with (what this process wrote: its own writes wake no pass)."""

    def __init__(
        self,
        settings: Settings,
        kube: KubeApi,
        google: GoogleApi,
        metrics: Metrics,
        view: ClusterView | None = None,
        clock: Clock | None = None,
        events: EventSink | None = None,
        memory: WriteMemory | None = None,
        webhooks: WebhookApi | None = None,
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.google = google
        self.metrics = metrics
        self.view = view
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.events = events or KubeEvents(kube, self.clock)
        self.memory = memory or WriteMemory()
        # None where no pass runs (the consent API): only the leader's passes send notices.
        self.webhooks = webhooks
        self.secrets = SecretWriter(kube, view, metrics, self.memory)
        self._credentials: dict[Key, tuple[str, dict[str, str]]] = {}
        self._pass_slots: asyncio.Semaphore | None = None

    @property
    def pass_slots(self) -> asyncio.Semaphore:
        """How many GoogleClient passes run at once: enough to keep the API server and Google
        busy, few enough that a burst of due clients is taken in turns, not all at once."""
        if self._pass_slots is None:
            self._pass_slots = asyncio.Semaphore(PASSES_AT_ONCE)
        return self._pass_slots

    @property
    def cluster(self) -> ClusterView:
        """The watched picture; passes run only on the leader, which always has one."""
        assert self.view is not None, "a pass needs the cluster view"
        return self.view

    async def credentials_data(self, key: Key) -> tuple[str, dict[str, str] | None]:
        """(resourceVersion, decoded data) of a credentials Secret; a GET only when the watch
        shows a version this process has not read yet."""
        if self.view is not None:
            seen = self.view.secret_meta.get(key)
            if seen is None:
                return "", None
            cached = self._credentials.get(key)
            if cached is not None and cached[0] == seen.resource_version:
                return cached
        secret = await self.kube.get_secret(*key)
        if secret is None:
            return "", None
        entry = (
            str(secret["metadata"].get("resourceVersion", "")),
            decode_data(secret.get("data") or {}),
        )
        self._credentials[key] = entry
        return entry

    def branch_status(self, body: Mapping[str, Any]) -> StatusBase:
        """The Branch status this process wrote last, else what the watch shows."""
        written = self.memory.branch_written(str(body["metadata"].get("uid", "")))
        return status_base(body, StatusBase(*written) if written is not None else None)

    def remember_branch_status(self, uid: str, written: StatusBase) -> None:
        self.memory.remember_branch(uid, written.status, written.version)

    def forget_branch(self, uid: str) -> None:
        self.memory.forget_branch(uid)

    def forget_credentials(self, key: Key) -> None:
        self._credentials.pop(key, None)
