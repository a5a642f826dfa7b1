"""The operator's edge to the Kubernetes API.

Plain dicts in and out (the builders make them). The official client is synchronous, so
every call runs in a worker thread and the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from . import GROUP, VERSION

MERGE_PATCH = "application/merge-patch+json"


class KubeError(Exception):
    """A Kubernetes API failure; the message carries the status and the API's reason only."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"Kubernetes API answered {status}: {reason}")
        self.status = status


def load_configuration() -> kubernetes.client.Configuration:
    """In-cluster config inside a pod, else KUBECONFIG / ~/.kube/config."""
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    return configuration


class Kube:
    def __init__(self, configuration: kubernetes.client.Configuration, threads: int = 16) -> None:
        configuration.connection_pool_maxsize = threads
        self._api = kubernetes.client.ApiClient(configuration)
        self._core = kubernetes.client.CoreV1Api(self._api)
        self._custom = kubernetes.client.CustomObjectsApi(self._api)
        self._apps = kubernetes.client.AppsV1Api(self._api)
        self._leases = kubernetes.client.CoordinationV1Api(self._api)

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    async def _call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        call = functools.partial(function, *args, _preload_content=False, **kwargs)
        try:
            response = await asyncio.to_thread(call)
        except ApiException as error:
            raise KubeError(error.status or 0, _reason(error)) from None
        payload = response.data
        return json.loads(payload) if payload else {}

    async def _maybe(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Like _call, but None for 404."""
        try:
            return await self._call(function, *args, **kwargs)
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    # Secrets -------------------------------------------------------------------------------

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = await self._maybe(
            self._core.read_namespaced_secret, name, namespace
        )
        return result

    async def write_secret(self, desired: Mapping[str, Any]) -> dict[str, Any]:
        """Create the Secret, or update the existing object in place (same uid, so a mounted
        volume follows). Labels and annotations others added are kept; data is replaced."""
        meta = desired["metadata"]
        current = await self.get_secret(meta["namespace"], meta["name"])
        if current is None:
            try:
                created: dict[str, Any] = await self._call(
                    self._core.create_namespaced_secret, meta["namespace"], dict(desired)
                )
                return created
            except KubeError as error:
                if error.status != 409:
                    raise
                current = await self.get_secret(meta["namespace"], meta["name"])
                if current is None:
                    raise
        merged = _merge_for_replace(current, desired)
        replaced: dict[str, Any] = await self._call(
            self._core.replace_namespaced_secret, meta["name"], meta["namespace"], merged
        )
        return replaced

    async def delete_secret(
        self, namespace: str, name: str, resource_version: str | None = None
    ) -> bool:
        """Delete; with a resourceVersion, only that exact version (True if this call won)."""
        body: dict[str, Any] = {}
        if resource_version:
            body["preconditions"] = {"resourceVersion": resource_version}
        try:
            await self._call(self._core.delete_namespaced_secret, name, namespace, body=body)
        except KubeError as error:
            if error.status in (404, 409):
                return False
            raise
        return True

    async def patch_secret_labels(
        self,
        namespace: str,
        name: str,
        labels: Mapping[str, str],
        resource_version: str | None = None,
    ) -> None:
        """Merge labels in; with a resourceVersion the API server refuses (409) if the Secret
        changed since, which makes the patch a compare-and-swap."""
        metadata: dict[str, Any] = {"labels": dict(labels)}
        if resource_version:
            metadata["resourceVersion"] = resource_version
        await self._call(
            self._core.patch_namespaced_secret,
            name,
            namespace,
            {"metadata": metadata},
            _content_type=MERGE_PATCH,
        )

    # Custom resources ----------------------------------------------------------------------

    async def get_resource(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = await self._maybe(
            self._custom.get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name
        )
        return result

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None:
        """JSON merge patch of the status subresource; a vanished object is not an error."""
        await self._maybe(
            self._custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            plural,
            name,
            {"status": dict(status)},
            _content_type=MERGE_PATCH,
        )

    # Leases (leader election) ----------------------------------------------------------------

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = await self._maybe(
            self._leases.read_namespaced_lease, name, namespace
        )
        return result

    async def create_lease(self, namespace: str, name: str, spec: Mapping[str, Any]) -> bool:
        """False when another replica created it first."""
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": dict(spec),
        }
        try:
            await self._call(self._leases.create_namespaced_lease, namespace, body)
        except KubeError as error:
            if error.status == 409:
                return False
            raise
        return True

    async def replace_lease(self, lease: Mapping[str, Any]) -> bool:
        """PUT with the resourceVersion read: False when another replica wrote it meanwhile."""
        meta = lease["metadata"]
        try:
            await self._call(
                self._leases.replace_namespaced_lease, meta["name"], meta["namespace"], dict(lease)
            )
        except KubeError as error:
            if error.status == 409:
                return False
            raise
        return True

    # Workloads (the callback) ---------------------------------------------------------------

    async def apply_object(self, desired: Mapping[str, Any]) -> None:
        """Server-side apply of a namespaced Deployment, Service or ServiceAccount."""
        meta = desired["metadata"]
        patch = {
            "Deployment": self._apps.patch_namespaced_deployment,
            "Service": self._core.patch_namespaced_service,
            "ServiceAccount": self._core.patch_namespaced_service_account,
        }[str(desired["kind"])]
        await self._call(
            patch,
            meta["name"],
            meta["namespace"],
            dict(desired),
            field_manager="google-token-operator",
            force=True,
            _content_type="application/apply-patch+yaml",
        )


def _merge_for_replace(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    current_meta = current.get("metadata", {})
    desired_meta = desired["metadata"]
    metadata = {
        **current_meta,
        "labels": {**(current_meta.get("labels") or {}), **desired_meta.get("labels", {})},
        "ownerReferences": desired_meta.get("ownerReferences")
        or current_meta.get("ownerReferences"),
    }
    if "annotations" in desired_meta:
        metadata["annotations"] = {
            **(current_meta.get("annotations") or {}),
            **desired_meta["annotations"],
        }
    return {**current, "metadata": metadata, "data": dict(desired.get("data", {}))}


def _reason(error: ApiException) -> str:
    try:
        body = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        body = {}
    return str(body.get("message") or error.reason or "unknown")
