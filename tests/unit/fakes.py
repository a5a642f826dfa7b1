"""Fake edges for unit tests of the passes: an in-memory Kubernetes store, a scripted Google,
a manual clock and an Event recorder. They keep only what the passes observe through the real
edges' methods (status codes, resourceVersions, the shape of objects)."""

from __future__ import annotations

import base64
import collections
import copy
import dataclasses
import datetime as dt
import itertools
import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from google_token_operator.google_types import (
    ApiError,
    ClientCredentials,
    GoogleError,
    TokenResponse,
)
from google_token_operator.kube import KubeError
from google_token_operator.metrics import Metrics
from google_token_operator.naming import Key, is_managed
from google_token_operator.reconcile.context import Indexes, Operator
from google_token_operator.settings import Settings
from google_token_operator.tokens import AccessToken
from google_token_operator.views import managed_secret_view, snapshot

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
LOG = logging.getLogger("unit")


class Clock:
    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


class FakeKube:
    """Secrets and custom resources in memory, with resourceVersions and the API's refusals."""

    def __init__(self, namespaces: Iterable[str] = ("team", "gto")) -> None:
        self.namespaces = set(namespaces)
        self.secrets: dict[Key, dict[str, Any]] = {}
        self.resources: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.writes: list[tuple[str, Key]] = []
        self._versions = itertools.count(1)

    def _stamp(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["resourceVersion"] = str(next(self._versions))
        return obj

    # Secrets ---------------------------------------------------------------------------------

    def put_secret(self, namespace: str, name: str, plain: Mapping[str, str], **meta: Any) -> None:
        """A Secret placed by a person (or a test), not by the operator."""
        data = {k: base64.b64encode(v.encode()).decode() for k, v in plain.items()}
        body = {"metadata": {"name": name, "namespace": namespace, **meta}, "data": data}
        self.secrets[(namespace, name)] = self._stamp(body)

    def plain(self, namespace: str, name: str) -> dict[str, str] | None:
        secret = self.secrets.get((namespace, name))
        if secret is None:
            return None
        return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        secret = self.secrets.get((namespace, name))
        return copy.deepcopy(secret) if secret is not None else None

    async def write_secret(self, desired: Mapping[str, Any]) -> dict[str, Any]:
        meta = desired["metadata"]
        key = (meta["namespace"], meta["name"])
        if key[0] not in self.namespaces:
            raise KubeError(404, f'namespaces "{key[0]}" not found')
        body = copy.deepcopy(dict(desired))
        self.writes.append(("write", key))
        self.secrets[key] = self._stamp(body)
        return copy.deepcopy(body)

    async def delete_secret(
        self, namespace: str, name: str, resource_version: str | None = None
    ) -> bool:
        current = self.secrets.get((namespace, name))
        if current is None:
            return False
        if resource_version and current["metadata"]["resourceVersion"] != resource_version:
            return False
        self.writes.append(("delete", (namespace, name)))
        del self.secrets[(namespace, name)]
        return True

    async def patch_secret_labels(
        self,
        namespace: str,
        name: str,
        labels: Mapping[str, str],
        resource_version: str | None = None,
    ) -> None:
        current = self.secrets.get((namespace, name))
        if current is None:
            raise KubeError(404, "not found")
        if resource_version and current["metadata"]["resourceVersion"] != resource_version:
            raise KubeError(409, "the object has been modified")
        current["metadata"].setdefault("labels", {}).update(labels)
        self._stamp(current)

    # Custom resources ------------------------------------------------------------------------

    def put_resource(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        meta = body["metadata"]
        meta.setdefault("uid", f"uid-{meta['name']}")
        meta.setdefault("generation", 1)
        body.setdefault("status", {})
        self.resources[(plural, meta["namespace"], meta["name"])] = self._stamp(body)
        return body

    def resource(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        return self.resources[(plural, namespace, name)]

    async def get_resource(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        body = self.resources.get((plural, namespace, name))
        return copy.deepcopy(body) if body is not None else None

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None:
        body = self.resources.get((plural, namespace, name))
        if body is None:
            return
        self.writes.append(("status", (namespace, name)))
        merged = dict(body.get("status") or {})
        for key, value in status.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = copy.deepcopy(value)
        body["status"] = merged
        self._stamp(body)

    # What kopf's indexes would hold ----------------------------------------------------------

    def indexes(self) -> Indexes:
        """Live views, as kopf's indexes are: each read sees the store as it is now."""
        return Indexes(
            managed_secrets=_Live(lambda: self._managed()),
            secret_versions=_Live(lambda: self._unmanaged_versions()),
            branches_by_client=_Live(lambda: self._branches()),
        )

    def _managed(self) -> dict[Key, list[Any]]:
        return {
            key: [managed_secret_view(body)]
            for key, body in self.secrets.items()
            if is_managed(body["metadata"].get("labels") or {})
        }

    def _unmanaged_versions(self) -> dict[Key, list[str]]:
        return {
            key: [body["metadata"]["resourceVersion"]]
            for key, body in self.secrets.items()
            if not is_managed(body["metadata"].get("labels") or {})
        }

    def _branches(self) -> dict[Key, list[dict[str, Any]]]:
        grouped: dict[Key, list[dict[str, Any]]] = collections.defaultdict(list)
        for (plural, namespace, _), body in self.resources.items():
            if plural == "branches":
                client = body["spec"]["clientRef"]["name"]
                grouped[(namespace, client)].append(snapshot(body))
        return dict(grouped)


class _Live(Mapping[Key, Any]):
    def __init__(self, compute: Any) -> None:
        self._compute = compute

    def __getitem__(self, key: Key) -> Any:
        return self._compute()[key]

    def __iter__(self) -> Iterator[Key]:
        return iter(self._compute())

    def __len__(self) -> int:
        return len(self._compute())


@dataclasses.dataclass
class FakeGoogle:
    """Google as the passes see it: each call counted, answers scripted."""

    clock: Clock
    lifetime: dt.timedelta = dt.timedelta(hours=1)
    account: str = "owner@example.com"
    # Errors to raise from the next refresh calls, in order.
    refresh_errors: list[GoogleError] = dataclasses.field(default_factory=list)
    refused_locations: set[str] = dataclasses.field(default_factory=set)
    calls: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    revoked: list[str] = dataclasses.field(default_factory=list)

    def _token(self, scopes: tuple[str, ...]) -> AccessToken:
        now = self.clock().replace(microsecond=0)
        number = sum(self.calls.values())
        return AccessToken(
            f"ya29.fake-{number}", "Bearer", tuple(sorted(scopes)), now, now + self.lifetime
        )

    async def refresh(
        self, credentials: ClientCredentials, refresh_token: str, scopes: tuple[str, ...]
    ) -> TokenResponse:
        self.calls["refresh"] += 1
        if self.refresh_errors:
            raise self.refresh_errors.pop(0)
        return TokenResponse(self._token(scopes), None)

    async def exchange_code(
        self,
        credentials: ClientCredentials,
        code: str,
        code_verifier: str,
        redirect_uri: str,
        scopes: tuple[str, ...],
    ) -> TokenResponse:
        self.calls["exchange"] += 1
        return TokenResponse(self._token(scopes), f"1//refresh-from-{code}")

    async def revoke(self, token: str) -> None:
        self.calls["revoke"] += 1
        self.revoked.append(token)

    async def userinfo_email(self, access_token: str) -> str:
        self.calls["userinfo"] += 1
        return self.account

    async def get_location(self, access_token: str, location_id: str) -> dict[str, Any]:
        self.calls["location"] += 1
        if location_id in self.refused_locations:
            raise ApiError(403, "PERMISSION_DENIED", "The caller does not have permission")
        return {"name": f"locations/{location_id}", "title": f"Location {location_id}"}


@dataclasses.dataclass
class RecordedEvents:
    posted: list[tuple[str, bool, str]] = dataclasses.field(default_factory=list)

    def post(self, body: Mapping[str, Any], warning: bool, reason: str, message: str) -> None:
        self.posted.append((str(body["metadata"]["name"]), warning, reason))


def operator_with_fakes(
    settings: Settings | None = None,
) -> tuple[Operator, FakeKube, FakeGoogle, Clock, RecordedEvents]:
    clock = Clock()
    kube, google, events = FakeKube(), FakeGoogle(clock), RecordedEvents()
    op = Operator(
        settings or Settings(operator_namespace="gto"),
        kube,  # type: ignore[arg-type]
        google,  # type: ignore[arg-type]
        Metrics(),
        clock=clock,
        events=events,
    )
    return op, kube, google, clock, events
