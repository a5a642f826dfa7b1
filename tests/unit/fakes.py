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
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, NoReturn

from google_token_operator.google_types import (
    ApiError,
    ClientCredentials,
    GoogleError,
    TokenResponse,
    Userinfo,
)
from google_token_operator.kube import KubeError, StatusConflict
from google_token_operator.kube.informer import Informer
from google_token_operator.metrics import Metrics
from google_token_operator.naming import Key, is_managed
from google_token_operator.notify.url_policy import WebhookPolicy, WebhookTarget, check_url
from google_token_operator.runtime.cluster import ClusterView
from google_token_operator.runtime.context import Operator
from google_token_operator.runtime.memory import WriteMemory
from google_token_operator.settings import Settings
from google_token_operator.tokens import AccessToken

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
    """Secrets and custom resources in memory, with uids, resourceVersions and the API's
    refusals (409 on a name taken, a failed precondition or test). Every change is shown at
    once to the watches of `view`, as if the watch never lagged; or, with `late` set, only
    when `deliver` is called, as a watch that lags behind the writes. Nothing lists or watches
    it (raw requests, watches and workload applies are refused)."""

    def __init__(self, namespaces: Iterable[str] = ("team", "gto")) -> None:
        self.namespaces = set(namespaces)
        self.secrets: dict[Key, dict[str, Any]] = {}
        self.resources: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.writes: list[tuple[str, Key]] = []
        self.view: ClusterView | None = None
        self.timeout = dt.timedelta(seconds=15)
        self._versions = itertools.count(1)
        self.late = False
        self._undelivered: list[Callable[[], None]] = []

    def deliver(self) -> None:
        """Show the watches every change held back while `late`, in order."""
        while self._undelivered:
            self._undelivered.pop(0)()

    def _show(self, informer: Informer[Any], kind: str, body: dict[str, Any]) -> None:
        copied = copy.deepcopy(body)
        if self.late:
            self._undelivered.append(lambda: informer.apply(kind, copied))
        else:
            informer.apply(kind, copied)

    def _stamp(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["resourceVersion"] = str(next(self._versions))
        obj["metadata"].setdefault("uid", f"uid-{next(self._versions)}")
        return obj

    def _show_secret(self, kind: str, body: dict[str, Any]) -> None:
        if self.view is not None:
            self._show(self.view.secret_meta, kind, body)
            if is_managed(body["metadata"].get("labels") or {}) or kind == "DELETED":
                self._show(self.view.managed, kind, body)

    def _show_resource(self, plural: str, kind: str, body: dict[str, Any]) -> None:
        if self.view is not None:
            informer = self.view.branches if plural == "branches" else self.view.clients
            self._show(informer, kind, body)

    async def request(self, method: str, path: str, **kwargs: Any) -> NoReturn:
        raise AssertionError(f"FakeKube serves no raw {method} {path}")

    def watch(
        self, path: str, params: Mapping[str, str], accept: str = "application/json"
    ) -> AsyncIterator[dict[str, Any]]:
        raise AssertionError(f"FakeKube feeds its watches itself, not {path}")

    async def apply_object(self, desired: Mapping[str, Any]) -> NoReturn:
        raise AssertionError("FakeKube applies no workload")

    # Secrets ---------------------------------------------------------------------------------

    def put_secret(self, namespace: str, name: str, plain: Mapping[str, str], **meta: Any) -> None:
        """A Secret placed by a person (or a test), not by the operator."""
        data = {k: base64.b64encode(v.encode()).decode() for k, v in plain.items()}
        body = {"metadata": {"name": name, "namespace": namespace, **meta}, "data": data}
        self.secrets[(namespace, name)] = self._stamp(body)
        self._show_secret("ADDED", body)

    def plain(self, namespace: str, name: str) -> dict[str, str] | None:
        secret = self.secrets.get((namespace, name))
        if secret is None:
            return None
        return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        secret = self.secrets.get((namespace, name))
        return copy.deepcopy(secret) if secret is not None else None

    async def create_secret(self, body: Mapping[str, Any]) -> dict[str, Any]:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        if key[0] not in self.namespaces:
            raise KubeError(404, "NotFound", f'namespaces "{key[0]}" not found')
        if key in self.secrets:
            raise KubeError(409, "AlreadyExists", f'secrets "{key[1]}" already exists')
        created = self._stamp(copy.deepcopy(dict(body)))
        self.secrets[key] = created
        self.writes.append(("create", key))
        self._show_secret("ADDED", created)
        return copy.deepcopy(created)

    async def patch_secret(
        self, namespace: str, name: str, operations: list[dict[str, Any]]
    ) -> dict[str, Any]:
        current = self.secrets.get((namespace, name))
        if current is None:
            raise KubeError(404, "NotFound", "not found")
        for operation in operations:
            field = operation["path"].rsplit("/", 1)[1]
            if operation["op"] == "test" and current["metadata"].get(field) != operation["value"]:
                raise KubeError(422, "Invalid", "the test operation failed")
        for operation in operations:
            if operation["op"] == "replace" and operation["path"] == "/data":
                current["data"] = copy.deepcopy(operation["value"])
            if operation["op"] == "add" and operation["path"].startswith("/metadata/"):
                current["metadata"][operation["path"].rsplit("/", 1)[1]] = copy.deepcopy(
                    operation["value"]
                )
        self._stamp(current)
        self.writes.append(("patch", (namespace, name)))
        self._show_secret("MODIFIED", current)
        return copy.deepcopy(current)

    async def merge_patch_secret(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        current = self.secrets.get((namespace, name))
        if current is None:
            raise KubeError(404, "NotFound", "not found")
        meta = patch.get("metadata") or {}
        expected = meta.get("resourceVersion")
        if expected and current["metadata"]["resourceVersion"] != expected:
            raise KubeError(409, "Conflict", "the object has been modified")
        current["metadata"].setdefault("labels", {}).update(meta.get("labels") or {})
        self._stamp(current)
        self._show_secret("MODIFIED", current)
        return copy.deepcopy(current)

    async def maybe(self, method: str, path: str, **kwargs: Any) -> dict[str, Any] | None:
        """The consent API's label patch of a consent Secret (the only raw call it makes)."""
        namespace, name = path.split("/namespaces/")[1].split("/secrets/")
        try:
            return await self.merge_patch_secret(namespace, name, kwargs["body"])
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    async def delete_secret(
        self, namespace: str, name: str, *, uid: str, resource_version: str | None = None
    ) -> bool:
        current = self.secrets.get((namespace, name))
        if current is None or current["metadata"]["uid"] != uid:
            return False
        if resource_version and current["metadata"]["resourceVersion"] != resource_version:
            return False
        self.writes.append(("delete", (namespace, name)))
        del self.secrets[(namespace, name)]
        self._show_secret("DELETED", current)
        return True

    # Custom resources ------------------------------------------------------------------------

    def put_resource(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        meta = body["metadata"]
        meta.setdefault("uid", f"uid-{meta['name']}")
        meta.setdefault("generation", 1)
        body.setdefault("status", {})
        self.resources[(plural, meta["namespace"], meta["name"])] = self._stamp(body)
        self._show_resource(plural, "ADDED", body)
        return body

    def delete_resource(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        body = self.resources.pop((plural, namespace, name))
        self._show_resource(plural, "DELETED", body)
        return body

    def resource(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        return self.resources[(plural, namespace, name)]

    async def get_resource(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        body = self.resources.get((plural, namespace, name))
        return copy.deepcopy(body) if body is not None else None

    async def list_resources(
        self, plural: str, namespace: str | None, selector: str = ""
    ) -> list[dict[str, Any]]:
        assert not selector, "FakeKube lists custom resources without a selector"
        return [
            copy.deepcopy(body)
            for (kind, where, _), body in sorted(self.resources.items())
            if kind == plural and namespace in (None, where)
        ]

    async def list_secrets(self, namespace: str | None, selector: str) -> list[dict[str, Any]]:
        """The Secrets carrying every label of `selector` (equality terms only)."""
        wanted = dict(term.split("=", 1) for term in selector.split(","))
        return [
            copy.deepcopy(body)
            for (where, _), body in sorted(self.secrets.items())
            if namespace in (None, where)
            and wanted.items() <= (body["metadata"].get("labels") or {}).items()
        ]

    async def patch_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        resource_version: str,
    ) -> str | None:
        body = self.resources.get((plural, namespace, name))
        if body is None:
            return None
        if resource_version and resource_version != body["metadata"]["resourceVersion"]:
            raise StatusConflict()
        self.writes.append(("status", (namespace, name)))
        merged = dict(body.get("status") or {})
        for key, value in status.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = copy.deepcopy(value)
        body["status"] = merged
        self._stamp(body)
        self._show_resource(plural, "MODIFIED", body)
        return str(body["metadata"]["resourceVersion"])


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
    # Scopes the person leaves unticked (or removed): answers lack them.
    unticked: set[str] = dataclasses.field(default_factory=set)
    # Time-limited access: what each answer's refresh_token_expires_in says.
    grant_lifetime: dt.timedelta | None = None

    def _token(self, scopes: tuple[str, ...]) -> AccessToken:
        now = self.clock().replace(microsecond=0)
        number = sum(self.calls.values())
        granted = tuple(sorted(set(scopes) - self.unticked))
        return AccessToken(f"ya29.fake-{number}", "Bearer", granted, now, now + self.lifetime)

    async def refresh(
        self, credentials: ClientCredentials, refresh_token: str, scopes: tuple[str, ...]
    ) -> TokenResponse:
        self.calls["refresh"] += 1
        if self.refresh_errors:
            raise self.refresh_errors.pop(0)
        return TokenResponse(self._token(scopes), None, self.grant_lifetime)

    async def exchange_code(
        self,
        credentials: ClientCredentials,
        code: str,
        code_verifier: str,
        redirect_uri: str,
        scopes: tuple[str, ...],
    ) -> TokenResponse:
        self.calls["exchange"] += 1
        return TokenResponse(self._token(scopes), f"1//refresh-from-{code}", self.grant_lifetime)

    async def revoke(self, token: str) -> bool:
        self.calls["revoke"] += 1
        self.revoked.append(token)
        return True

    async def userinfo(self, access_token: str) -> Userinfo:
        self.calls["userinfo"] += 1
        return Userinfo(self.account, True, self.account.partition("@")[2])

    async def get_location(self, access_token: str, location_id: str) -> dict[str, Any]:
        self.calls["location"] += 1
        if location_id in self.refused_locations:
            raise ApiError(403, "PERMISSION_DENIED", "The caller does not have permission")
        return {"name": f"locations/{location_id}", "title": f"Location {location_id}"}


@dataclasses.dataclass
class FakeWebhooks:
    """Webhook receivers as the passes see them: the real URL policy, scripted answers (200
    once the script is used up), every body sent kept."""

    policy: WebhookPolicy = dataclasses.field(default_factory=WebhookPolicy)
    answers: list[int] = dataclasses.field(default_factory=list)
    sent: list[tuple[str, dict[str, Any]]] = dataclasses.field(default_factory=list)

    def check(self, url: str) -> WebhookTarget:
        return check_url(url, self.policy)

    async def post(self, url: str, body: Mapping[str, Any]) -> int:
        self.check(url)
        self.sent.append((url, dict(body)))
        return self.answers.pop(0) if self.answers else 200


@dataclasses.dataclass
class RecordedEvents:
    posted: list[tuple[str, bool, str]] = dataclasses.field(default_factory=list)
    # (object name, reason, message) of each Event, for the tests that read what it says.
    messages: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)

    def post(self, body: Mapping[str, Any], warning: bool, reason: str, message: str) -> None:
        self.posted.append((str(body["metadata"]["name"]), warning, reason))
        self.messages.append((str(body["metadata"]["name"]), reason, message))

    async def post_now(
        self, body: Mapping[str, Any], warning: bool, reason: str, message: str
    ) -> None:
        self.post(body, warning, reason, message)


def operator_with_fakes(
    settings: Settings | None = None,
    webhooks: FakeWebhooks | None = None,
) -> tuple[Operator, FakeKube, FakeGoogle, Clock, RecordedEvents]:
    """An Operator over fake edges, its watches synced and fed by the fake API server."""
    settings = settings or Settings(operator_namespace="gto")
    clock = Clock()
    kube, google, events = FakeKube(), FakeGoogle(clock), RecordedEvents()
    memory = WriteMemory()
    view = ClusterView(kube, [], settings.operator_namespace, memory)
    for informer in view.informers:
        informer.synced.set()
    kube.view = view
    op = Operator(
        settings,
        kube,
        google,
        Metrics(),
        view=view,
        clock=clock,
        events=events,
        memory=memory,
        webhooks=webhooks,
    )
    return op, kube, google, clock, events
