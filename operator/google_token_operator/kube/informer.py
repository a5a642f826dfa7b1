"""List-and-watch caches: what the operator knows about the cluster without asking it.

Each `Informer` lists one kind (in pages, so a cluster full of large Secrets never arrives in
one answer), then watches it from the listed resourceVersion, keeping only a compact view of
each object that `reduce` returns. A dropped watch resumes from the last version seen; a
version too old (410 Gone) lists again. `synced` is set once every path was listed, and
`on_change` hears of every view that changed, so passes can be woken by what they depend on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

from .. import policy
from ..naming import Key
from ..unforeseen import unexpected
from .api import KubeError

V = TypeVar("V")
logger = logging.getLogger(__name__)

PAGE_SIZE = 500
# Full Secrets may be 1 MiB each (~1.4 MiB as JSON): a page of them is held three times over
# while it is read and decoded, so such lists take few per page.
FULL_SECRET_PAGE_SIZE = 10
RETRY_BASE = dt.timedelta(seconds=1)
RETRY_CAP = dt.timedelta(minutes=1)
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
METADATA_WATCH = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"

OnChange = Callable[[Key, Any, Any], None]


class Requests(Protocol):
    """One call to the API server (kube.Kube.request)."""

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        time_limit: dt.timedelta | None = None,
        guarded: bool = True,
    ) -> dict[str, Any]: ...


class WatchApi(Requests, Protocol):
    """What an informer lists and watches through (kube.Kube)."""

    def watch(
        self, path: str, params: Mapping[str, str], accept: str = "application/json"
    ) -> AsyncIterator[dict[str, Any]]: ...


class _Gone(Exception):
    """The watch's resourceVersion is too old: list again."""


def object_key(body: dict[str, Any]) -> Key:
    meta = body.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


class Informer(Generic[V]):
    def __init__(
        self,
        kube: WatchApi,
        name: str,
        paths: Sequence[str],
        reduce: Callable[[dict[str, Any]], V],
        *,
        label_selector: str = "",
        metadata_only: bool = False,
        page_size: int = PAGE_SIZE,
        on_change: OnChange | None = None,
    ) -> None:
        self.kube = kube
        self.name = name
        self.paths = tuple(paths)
        self.reduce = reduce
        self.label_selector = label_selector
        self.metadata_only = metadata_only
        self.page_size = page_size
        self.on_change = on_change
        self.synced = asyncio.Event()
        self._store: dict[Key, V] = {}
        self._keys: dict[str, set[Key]] = {path: set() for path in self.paths}
        self._listed: set[str] = set()
        # Per path, the last resourceVersion seen ("": list first). Kept here, not returned, so
        # a watch dropped mid-stream resumes after the last event it delivered.
        self._versions: dict[str, str] = dict.fromkeys(self.paths, "")

    # Reading ---------------------------------------------------------------------------------

    def get(self, key: Key) -> V | None:
        return self._store.get(key)

    def __contains__(self, key: Key) -> bool:
        return key in self._store

    def __len__(self) -> int:
        return len(self._store)

    def items(self) -> Iterator[tuple[Key, V]]:
        return iter(list(self._store.items()))

    # Running ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """List and watch every path until cancelled."""
        await asyncio.gather(*(self._follow(path) for path in self.paths))

    async def _follow(self, path: str) -> None:
        failures = 0
        while True:
            try:
                if not self._versions[path]:
                    self._versions[path] = await self._list(path)
                await self._watch(path)
                failures = 0
            except _Gone:
                self._versions[path] = ""
            except KubeError as error:
                failures += 1
                jitter = random.random()  # noqa: S311 - jitter, not a secret
                delay = policy.backoff_delay(failures, None, jitter, RETRY_BASE, RETRY_CAP)
                logger.warning(
                    f"Watching {self.name} failed ({error}); retrying in "
                    f"{delay.total_seconds():.1f}s"
                )
                if error.status == 410:
                    self._versions[path] = ""
                await asyncio.sleep(delay.total_seconds())

    async def _list(self, path: str) -> str:
        seen: set[Key] = set()
        token = ""
        version = ""
        while True:
            version, token = await self._list_page(path, token, version, seen)
            if not token:
                break
        for key in self._keys[path] - seen:
            self._drop(path, key)
        self._listed.add(path)
        if self._listed == set(self.paths):
            self.synced.set()
        return version

    async def _list_page(
        self, path: str, token: str, version: str, seen: set[Key]
    ) -> tuple[str, str]:
        """Take in one page; returns (resourceVersion, continue token). The page is dropped
        on return, before the next one is asked for: one page in memory at a time."""
        params = {"limit": str(self.page_size)}
        if self.label_selector:
            params["labelSelector"] = self.label_selector
        if token:
            params["continue"] = token
        page = await self.kube.request(
            "GET",
            path,
            params=params,
            accept=METADATA_LIST if self.metadata_only else "application/json",
        )
        for body in page.get("items") or []:
            key = object_key(body)
            seen.add(key)
            self._take(path, key, body)
        meta = page.get("metadata") or {}
        return str(meta.get("resourceVersion") or version), str(meta.get("continue") or "")

    async def _watch(self, path: str) -> None:
        params = {"resourceVersion": self._versions[path], "allowWatchBookmarks": "true"}
        if self.label_selector:
            params["labelSelector"] = self.label_selector
        accept = METADATA_WATCH if self.metadata_only else "application/json"
        async for event in self.kube.watch(path, params, accept=accept):
            kind = event.get("type")
            body = event.get("object") or {}
            if kind == "ERROR":
                if body.get("code") == 410:
                    raise _Gone()
                raise KubeError(int(body.get("code") or 0), str(body.get("reason") or ""))
            if kind != "BOOKMARK":
                self.apply(str(kind), body, path)
            version = (body.get("metadata") or {}).get("resourceVersion")
            self._versions[path] = str(version or self._versions[path])

    def apply(self, kind: str, body: dict[str, Any], path: str = "") -> None:
        """Take in one watch event (ADDED, MODIFIED or DELETED) for the object `body`."""
        path = path or self.paths[0]
        key = object_key(body)
        if kind == "DELETED":
            self._drop(path, key)
        else:
            self._take(path, key, body)

    def _take(self, path: str, key: Key, body: dict[str, Any]) -> None:
        """Keep the object's view. One whose view cannot be made (written around its schema)
        is left out, and only it: the watch goes on for every other object."""
        try:
            view = self.reduce(body)
        except Exception as error:
            logger.error(f"{self.name} {key[0]}/{key[1]} left out: {unexpected(error)}")
            self._drop(path, key)
            return
        self._put(path, key, view)

    def _put(self, path: str, key: Key, view: V) -> None:
        old = self._store.get(key)
        self._store[key] = view
        self._keys[path].add(key)
        if old != view:
            self._tell(key, old, view)

    def _drop(self, path: str, key: Key) -> None:
        old = self._store.pop(key, None)
        self._keys[path].discard(key)
        if old is not None:
            self._tell(key, old, None)

    def _tell(self, key: Key, old: V | None, new: V | None) -> None:
        """on_change, for one object: what it raises stops neither the watch nor the others."""
        if self.on_change is None:
            return
        try:
            self.on_change(key, old, new)
        except Exception as error:
            logger.error(f"{self.name} {key[0]}/{key[1]}: {unexpected(error)}")
