"""What every pass shares: settings, the Kubernetes and Google edges, and small caches."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..builders import content_hash
from ..google_http import GoogleHttp
from ..kube import Kube
from ..metrics import Metrics
from ..naming import Key
from ..settings import Settings
from ..tokens import decode_data
from ..views import SecretView, first
from .events import EventSink, KopfEvents

Clock = Callable[[], dt.datetime]


@dataclasses.dataclass
class Indexes:
    """The kopf indexes a pass reads (live mappings of key -> collection of values)."""

    managed_secrets: Mapping[Key, Iterable[SecretView]]
    secret_versions: Mapping[Key, Iterable[str]]
    branches_by_client: Mapping[Key, Iterable[dict[str, Any]]]

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> Indexes:
        """kopf passes each index as a keyword argument named after its function."""
        return cls(
            managed_secrets=kwargs["managed_secrets"],
            secret_versions=kwargs["secret_versions"],
            branches_by_client=kwargs["branches_by_client"],
        )

    @classmethod
    def empty(cls) -> Indexes:
        return cls(managed_secrets={}, secret_versions={}, branches_by_client={})


@dataclasses.dataclass
class SecretMemory:
    """What this process wrote last, so a lagging index does not cause a second write."""

    version_before: str
    written_hash: str


class Operator:
    """Shared state of the running operator: settings, edges and small in-memory caches."""

    def __init__(
        self,
        settings: Settings,
        kube: Kube,
        google: GoogleHttp,
        metrics: Metrics,
        clock: Clock | None = None,
        events: EventSink | None = None,
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.google = google
        self.metrics = metrics
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.events = events or KopfEvents()
        self._credentials: dict[Key, tuple[str, dict[str, str] | None]] = {}
        self._written: dict[Key, SecretMemory] = {}
        self._branch_status: dict[str, dict[str, Any]] = {}

    # --- gathering ---------------------------------------------------------------------------

    async def credentials_data(
        self, namespace: str, name: str, indexes: Indexes
    ) -> tuple[str, dict[str, str] | None]:
        """(resourceVersion, decoded data) of a credentials Secret; GET only when it changed."""
        version = first(indexes.secret_versions, (namespace, name))
        if version is None:
            return "", None
        cached = self._credentials.get((namespace, name))
        if cached is not None and cached[0] == version:
            return cached
        secret = await self.kube.get_secret(namespace, name)
        if secret is None:
            return "", None
        entry = (
            str(secret["metadata"].get("resourceVersion", "")),
            decode_data(secret.get("data") or {}),
        )
        self._credentials[(namespace, name)] = entry
        return entry

    # --- secrets -----------------------------------------------------------------------------

    async def sync_secret(self, desired: Mapping[str, Any], indexes: Indexes, role: str) -> bool:
        """Write the Secret if the cluster's copy differs; True if it wrote."""
        meta = desired["metadata"]
        key = (str(meta["namespace"]), str(meta["name"]))
        want = content_hash(desired.get("data") or {})
        seen = first(indexes.managed_secrets, key)
        if seen is not None and seen.data_hash == want:
            return False
        memory = self._written.get(key)
        if (
            memory is not None
            and memory.written_hash == want
            and seen is not None
            and seen.resource_version == memory.version_before
        ):
            return False  # we wrote it; the index has not caught up yet
        await self.kube.write_secret(desired)
        self._written[key] = SecretMemory(
            version_before=seen.resource_version if seen else "", written_hash=want
        )
        self.metrics.secret_writes.labels(role).inc()
        return True

    def index_lags(self, key: Key, indexes: Indexes) -> bool:
        """True while the index still shows the Secret as it was before this process wrote it."""
        memory = self._written.get(key)
        if memory is None:
            return False
        seen = first(indexes.managed_secrets, key)
        return (seen.resource_version if seen else "") == memory.version_before

    def branch_status(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The Branch status this process wrote last, else what the index shows."""
        uid = str(body["metadata"].get("uid", ""))
        return self._branch_status.get(uid) or dict(body.get("status") or {})

    def remember_branch_status(self, uid: str, status: dict[str, Any]) -> None:
        self._branch_status[uid] = status

    def forget_branch(self, uid: str) -> None:
        self._branch_status.pop(uid, None)

    def forget_secret(self, key: Key) -> None:
        self._written.pop(key, None)
        self._credentials.pop(key, None)
