"""The operator's edge to the Kubernetes API: an asyncio client over two aiohttp sessions.

Plain dicts in and out (the builders make them). Every call has a timeout; every failure is
a `KubeError` — an HTTP status from the API server, or status 0 for a transport failure
(refused, reset, timed out), which is always worth retrying.

Watches and calls never starve each other: long-lived watches have a pool of their own with
no limit (each informer path holds one), calls take one of `connections` slots. A write asks
`write_window` (how long this replica may still write, see leader.py) once it holds its slot,
just before it is sent, and its timeout never outlives that window: a leader whose Lease may
have lapsed cannot write, even after waiting for a connection.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from .. import GROUP, VERSION
from .config import KubeConfig

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
FIELD_MANAGER = "google-token-operator"
# One call may take this long; a watch is held open for WATCH_SECONDS and read with no total
# timeout but with this much silence allowed between bookmarks.
DEFAULT_TIMEOUT = dt.timedelta(seconds=15)
WATCH_SECONDS = 290
WATCH_SILENCE = dt.timedelta(seconds=WATCH_SECONDS + 30)
# One watch event is one line; aiohttp refuses lines over 512 KiB by default, and a Secret
# anyone may label can hold 1 MiB (~1.4 MiB as JSON, more with annotations). Above anything
# the API server stores (etcd takes 1.5 MiB a request).
MAX_EVENT_BYTES = 16 * 2**20
# Statuses a retry (with back-off) may cure; 0 stands for a transport failure.
RETRYABLE = frozenset({0, 408, 429, 500, 502, 503, 504})


class KubeError(Exception):
    """A Kubernetes API failure; the message carries the status and the API's reason only."""

    def __init__(self, status: int, reason: str, message: str = "") -> None:
        text = f"Kubernetes API answered {status}: {message or reason}"
        if status == 0:
            text = f"Kubernetes API not reachable: {message or reason}"
        super().__init__(text)
        self.status = status
        self.reason = reason

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE


class WriteFenced(KubeError):
    """A write refused before it was sent: this replica may no longer act (its Lease lapsed)."""

    def __init__(self) -> None:
        super().__init__(0, "Fenced", "this replica no longer holds the leader Lease")


class StatusConflict(KubeError):
    """A status patch refused: the object changed since the version the status came from."""

    def __init__(self) -> None:
        super().__init__(409, "Conflict", "the object changed since its status was read")


def secret_path(namespace: str, name: str = "") -> str:
    base = f"/api/v1/namespaces/{quote(namespace)}/secrets"
    return f"{base}/{quote(name)}" if name else base


def resource_path(plural: str, namespace: str, name: str = "") -> str:
    base = f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace)}/{plural}"
    return f"{base}/{quote(name)}" if name else base


def lease_path(namespace: str, name: str = "") -> str:
    base = f"/apis/coordination.k8s.io/v1/namespaces/{quote(namespace)}/leases"
    return f"{base}/{quote(name)}" if name else base


_WORKLOAD_PATHS = {
    "Deployment": "/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
    "Service": "/api/v1/namespaces/{namespace}/services/{name}",
    "ServiceAccount": "/api/v1/namespaces/{namespace}/serviceaccounts/{name}",
}


class Kube:
    def __init__(
        self,
        config: KubeConfig,
        timeout: dt.timedelta = DEFAULT_TIMEOUT,
        connections: int = 16,
        user_agent: str = FIELD_MANAGER,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.user_agent = user_agent
        # Seconds this replica may still write; <= 0: no more writes (see leader.py).
        self.write_window: Callable[[], float] = lambda: math.inf
        # The calls' slots: a call waits here, never inside aiohttp (whose pool is unbounded),
        # so the write window is asked after the wait, just before the request is sent.
        self._slots = asyncio.Semaphore(connections)
        self._calls: aiohttp.ClientSession | None = None
        self._watches: aiohttp.ClientSession | None = None

    def _session(self, current: aiohttp.ClientSession | None) -> aiohttp.ClientSession:
        if current is not None and not current.closed:
            return current
        connector = aiohttp.TCPConnector(
            ssl=self.config.ssl_context if self.config.ssl_context is not None else False,
            limit=0,  # bounded by the slots (calls) or by the informer paths (watches)
        )
        return aiohttp.ClientSession(
            base_url=self.config.server,
            connector=connector,
            raise_for_status=False,
            headers={"User-Agent": self.user_agent},
        )

    def _http(self) -> aiohttp.ClientSession:
        self._calls = self._session(self._calls)
        return self._calls

    def _watch_http(self) -> aiohttp.ClientSession:
        self._watches = self._session(self._watches)
        return self._watches

    async def close(self) -> None:
        for session in (self._calls, self._watches):
            if session is not None:
                await session.close()

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
    ) -> dict[str, Any]:
        """One call; the decoded JSON answer. Raises KubeError for anything but 2xx. A write
        is refused (WriteFenced) unless the write window is still open once it holds a slot,
        and is given up (timeout) when the window closes (`guarded=False`: the leader
        election's own Lease writes, which open the window)."""
        fenced = guarded and method != "GET"
        if fenced and self.write_window() <= 0:
            raise WriteFenced()  # no use waiting for a slot
        headers = {**self.config.auth_headers(), "Accept": accept}
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body)
        loop = asyncio.get_running_loop()
        seconds = (time_limit or self.timeout).total_seconds()
        deadline = loop.time() + seconds
        try:
            async with asyncio.timeout(seconds):
                await self._slots.acquire()
        except TimeoutError:
            raise KubeError(0, "TimeoutError", "no connection was free in time") from None
        try:
            left = deadline - loop.time()
            if fenced:
                window = self.write_window()
                if window <= 0:
                    raise WriteFenced()
                left = min(left, window)
            async with self._http().request(
                method,
                path,
                params=params,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=max(left, 0.001)),
            ) as response:
                payload = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            if fenced and self.write_window() <= 0:
                raise WriteFenced() from None
            raise KubeError(0, type(error).__name__, _transport_detail(error)) from None
        finally:
            self._slots.release()
        answer = _decode(payload)
        if status >= 300:
            raise KubeError(
                status, str(answer.get("reason") or ""), str(answer.get("message") or "")
            )
        return answer

    async def maybe(self, method: str, path: str, **kwargs: Any) -> dict[str, Any] | None:
        """Like request, but None for 404."""
        try:
            return await self.request(method, path, **kwargs)
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    async def watch(
        self, path: str, params: Mapping[str, str], accept: str = "application/json"
    ) -> AsyncIterator[dict[str, Any]]:
        """The events of one watch request, until the server ends it."""
        headers = {**self.config.auth_headers(), "Accept": accept}
        query = {**params, "watch": "true", "timeoutSeconds": str(WATCH_SECONDS)}
        limit = aiohttp.ClientTimeout(
            total=None,
            connect=self.timeout.total_seconds(),
            sock_read=WATCH_SILENCE.total_seconds(),
        )
        try:
            async with self._watch_http().get(
                path, params=query, headers=headers, timeout=limit
            ) as response:
                if response.status >= 300:
                    answer = _decode(await response.read())
                    raise KubeError(
                        response.status,
                        str(answer.get("reason") or ""),
                        str(answer.get("message") or ""),
                    )
                while line := await response.content.readline(max_line_length=MAX_EVENT_BYTES):
                    if line.strip():
                        yield json.loads(line)
        except (
            aiohttp.ClientError,
            aiohttp.http_exceptions.HttpProcessingError,  # a line too long
            TimeoutError,
            OSError,
            ValueError,
        ) as error:
            raise KubeError(0, type(error).__name__, _transport_detail(error)) from None

    # Secrets ---------------------------------------------------------------------------------

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.maybe("GET", secret_path(namespace, name))

    async def create_secret(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create; KubeError 409 when a Secret of that name exists (whoever made it)."""
        return await self.request(
            "POST",
            secret_path(body["metadata"]["namespace"]),
            body=body,
            params={"fieldManager": FIELD_MANAGER},
        )

    async def patch_secret(
        self, namespace: str, name: str, operations: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """A JSON patch; with `test` operations on uid and resourceVersion it is a
        compare-and-swap: the API server refuses (422/409) if the Secret is not the one read."""
        return await self.request(
            "PATCH",
            secret_path(namespace, name),
            body=operations,
            content_type=JSON_PATCH,
            params={"fieldManager": FIELD_MANAGER},
        )

    async def merge_patch_secret(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A merge patch; with metadata.resourceVersion set it is a compare-and-swap (409)."""
        return await self.request(
            "PATCH",
            secret_path(namespace, name),
            body=patch,
            content_type=MERGE_PATCH,
            params={"fieldManager": FIELD_MANAGER},
        )

    async def delete_secret(
        self, namespace: str, name: str, *, uid: str, resource_version: str | None = None
    ) -> bool:
        """Delete exactly this object (uid, optionally this version); True if this call did."""
        preconditions = {"uid": uid}
        if resource_version:
            preconditions["resourceVersion"] = resource_version
        try:
            await self.request(
                "DELETE", secret_path(namespace, name), body={"preconditions": preconditions}
            )
        except KubeError as error:
            if error.status in (404, 409):
                return False
            raise
        return True

    # Custom resources ----------------------------------------------------------------------

    async def get_resource(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.maybe("GET", resource_path(plural, namespace, name))

    async def patch_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        resource_version: str,
    ) -> str | None:
        """JSON merge patch of the status subresource, computed from the object at
        `resource_version`: StatusConflict when it changed since (read it again, never
        overwrite). The new resourceVersion; None when the object is gone."""
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            answer = await self.maybe(
                "PATCH",
                resource_path(plural, namespace, name) + "/status",
                body=body,
                content_type=MERGE_PATCH,
                params={"fieldManager": FIELD_MANAGER},
            )
        except KubeError as error:
            if error.status == 409:
                raise StatusConflict() from None
            raise
        if answer is None:
            return None
        return str((answer.get("metadata") or {}).get("resourceVersion") or "")

    async def annotate(
        self, plural: str, namespace: str, name: str, annotations: Mapping[str, str]
    ) -> dict[str, Any] | None:
        """Set annotations (JSON merge patch of metadata); None when the object is gone."""
        return await self.maybe(
            "PATCH",
            resource_path(plural, namespace, name),
            body={"metadata": {"annotations": dict(annotations)}},
            content_type=MERGE_PATCH,
            params={"fieldManager": FIELD_MANAGER},
        )

    async def list_resources(
        self, plural: str, namespace: str | None, selector: str = ""
    ) -> list[dict[str, Any]]:
        """Every object of a kind, in one namespace or (None) in all, listed in pages;
        `selector`: only those its label selector matches."""
        path = (
            resource_path(plural, namespace) if namespace else f"/apis/{GROUP}/{VERSION}/{plural}"
        )
        return await self._list(path, {"labelSelector": selector} if selector else {})

    async def list_secrets(self, namespace: str | None, selector: str) -> list[dict[str, Any]]:
        """The Secrets `selector` matches, in one namespace or (None) in all, listed in pages."""
        return await self._list(
            secret_path(namespace) if namespace else "/api/v1/secrets", {"labelSelector": selector}
        )

    async def list_events(self, namespace: str, kind: str, name: str) -> list[dict[str, Any]]:
        """The Events (core/v1) about one object."""
        selector = f"involvedObject.kind={kind},involvedObject.name={name}"
        return await self._list(
            f"/api/v1/namespaces/{quote(namespace)}/events", {"fieldSelector": selector}
        )

    async def namespace_exists(self, namespace: str) -> bool | None:
        """None: not known (this user may not read namespaces)."""
        try:
            return await self.maybe("GET", f"/api/v1/namespaces/{quote(namespace)}") is not None
        except KubeError as error:
            if error.status == 403:
                return None
            raise

    async def _list(self, path: str, query: Mapping[str, str]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        params = {**query, "limit": "500"}
        while True:
            page = await self.request("GET", path, params=params)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
            params = {**query, "limit": "500", "continue": str(token)}

    # Leases (leader election) ----------------------------------------------------------------

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.maybe("GET", lease_path(namespace, name))

    async def create_lease(self, namespace: str, name: str, spec: Mapping[str, Any]) -> bool:
        """False when another replica created it first."""
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": dict(spec),
        }
        try:
            await self.request("POST", lease_path(namespace), body=body, guarded=False)
        except KubeError as error:
            if error.status == 409:
                return False
            raise
        return True

    async def replace_lease(
        self, lease: Mapping[str, Any], *, guarded: bool = True
    ) -> dict[str, Any] | None:
        """PUT with the resourceVersion read: None when another replica wrote it meanwhile."""
        meta = lease["metadata"]
        try:
            return await self.request(
                "PUT", lease_path(meta["namespace"], meta["name"]), body=lease, guarded=guarded
            )
        except KubeError as error:
            if error.status == 409:
                return None
            raise

    # Workloads (the callback) ---------------------------------------------------------------

    async def apply_object(self, desired: Mapping[str, Any]) -> None:
        """Server-side apply of a namespaced Deployment, Service or ServiceAccount."""
        meta = desired["metadata"]
        path = _WORKLOAD_PATHS[str(desired["kind"])].format(
            namespace=quote(meta["namespace"]), name=quote(meta["name"])
        )
        await self.request(
            "PATCH",
            path,
            body=desired,
            content_type=APPLY_PATCH,
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
        )


def _decode(payload: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(payload) if payload else {}
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _transport_detail(error: BaseException) -> str:
    # The exception text may hold the URL, never a body or header (no token).
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
