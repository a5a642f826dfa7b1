"""kopf handlers: thin. They gather from kopf's indexes, call the reconciler, and wake it.

- One daemon per GoogleClient is the only actor that calls Google for it: it sleeps until
  the pure policy says the next refresh is due, or until an event wakes it (its spec, its
  Branches, its Secrets or its credentials Secret changed). See the README for why a daemon
  with a computed sleep rather than a fixed-interval timer.
- Branch handlers only wake their client's daemon, or report a missing client.
- Indexes give every pass what it needs without list calls.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from typing import Any

import kopf

from . import GROUP, MANAGED_BY, VERSION, branches
from .consent.manager import CallbackManager
from .consent.pending import CLIENT_NAMESPACE_LABEL
from .google_types import GoogleError
from .kube import KubeError
from .naming import CLIENT_LABEL, MANAGED_BY_LABEL, ROLE_CONSENT, ROLE_LABEL, Key, is_managed
from .reconcile.branch_pass import reconcile_branch
from .reconcile.client_pass import ClientPass
from .reconcile.context import Indexes, Operator
from .reconcile.deletion import delete_branch, delete_client
from .views import SecretView, first, managed_secret_view, snapshot

# After an unexpected failure of a pass (API server unreachable, ...), try again soon.
PASS_RETRY = dt.timedelta(seconds=5)


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


def register(registry: kopf.OperatorRegistry, op: Operator, callbacks: CallbackManager) -> Wakeups:
    wakeups = Wakeups()
    clients_resource = (GROUP, VERSION, "googleclients")
    branches_resource = (GROUP, VERSION, "branches")
    managed = {MANAGED_BY_LABEL: MANAGED_BY}
    unmanaged = {MANAGED_BY_LABEL: kopf.ABSENT}

    # --- indexes -------------------------------------------------------------------------

    @kopf.index("", "v1", "secrets", labels=managed, registry=registry, id="managed_secrets")
    def managed_secrets(body: kopf.Body, **_: Any) -> dict[Key, SecretView]:
        view = managed_secret_view(body)
        return {(view.namespace, view.name): view}

    @kopf.index("", "v1", "secrets", labels=unmanaged, registry=registry, id="secret_versions")
    def secret_versions(name: str, namespace: str | None, meta: kopf.Meta, **_: Any) -> Any:
        # Only the version: credentials are fetched when (and only when) they changed.
        return {(namespace or "", name): str(meta.get("resourceVersion", ""))}

    @kopf.index(*clients_resource, registry=registry, id="clients_by_credentials")
    def clients_by_credentials(name: str, namespace: str | None, spec: kopf.Spec, **_: Any) -> Any:
        secret = str((spec.get("credentialsSecretRef") or {}).get("name", ""))
        return {(namespace or "", secret): name}

    @kopf.index(*clients_resource, registry=registry, id="client_states")
    def client_states(name: str, namespace: str | None, status: kopf.Status, **_: Any) -> Any:
        return {(namespace or "", name): {"conditions": list(status.get("conditions") or [])}}

    @kopf.index(*branches_resource, registry=registry, id="branches_by_client")
    def branches_by_client(
        body: kopf.Body, namespace: str | None, spec: kopf.Spec, **_: Any
    ) -> Any:
        client = str((spec.get("clientRef") or {}).get("name", ""))
        return {(namespace or "", client): snapshot(body)}

    # --- GoogleClient ----------------------------------------------------------------------

    # A pass is short; on stop it may finish (backoff), then it is cancelled (timeout).
    @kopf.daemon(
        *clients_resource,
        registry=registry,
        cancellation_backoff=10,
        cancellation_timeout=5,
        id="google_client",
    )
    async def google_client(
        stopped: kopf.DaemonStopped,
        body: kopf.Body,
        name: str,
        namespace: str | None,
        logger: kopf.Logger,
        **kwargs: Any,
    ) -> None:
        indexes = Indexes.from_kwargs(kwargs)
        wake = wakeups.event((namespace or "", name))
        last_status: dict[str, Any] = dict(body.get("status") or {})
        last_record = None
        while not stopped:
            wake.clear()
            try:
                next_at, last_status, last_record = await ClientPass(op, body, logger).run(
                    indexes, last_status, last_record
                )
            except (KubeError, GoogleError) as error:
                logger.warning(f"Reconciling failed, retrying in {PASS_RETRY}: {error}")
                next_at = op.clock() + PASS_RETRY
            await _sleep(wake, stopped, max((next_at - op.clock()).total_seconds(), 0.0))

    @kopf.on.event(*clients_resource, registry=registry, id="google_client_changed")
    async def google_client_changed(
        name: str, namespace: str | None, type: str, status: kopf.Status, **_: Any
    ) -> None:
        key = (namespace or "", name)
        wakeups.wake(key)
        callbacks.observe(key, pending=type != "DELETED" and bool(status.get("authorization")))

    @kopf.on.delete(*clients_resource, registry=registry, id="google_client_deleted")
    async def google_client_deleted(
        name: str,
        namespace: str | None,
        spec: kopf.Spec,
        status: kopf.Status,
        logger: kopf.Logger,
        **kwargs: Any,
    ) -> None:
        ns = namespace or ""
        try:
            await delete_client(op, ns, name, spec, status, Indexes.from_kwargs(kwargs), logger)
        except GoogleError as error:
            raise kopf.TemporaryError(
                f"Revoking the grant at Google failed: {error}", delay=10
            ) from None
        wakeups.drop((ns, name))

    # --- Branch ----------------------------------------------------------------------------

    @kopf.on.event(*branches_resource, registry=registry, id="branch_changed")
    async def branch_changed(
        body: kopf.Body,
        type: str,
        namespace: str | None,
        spec: kopf.Spec,
        logger: kopf.Logger,
        **kwargs: Any,
    ) -> None:
        ns = namespace or ""
        client_states: kopf.Index[Key, dict[str, Any]] = kwargs["client_states"]
        client = str((spec.get("clientRef") or {}).get("name", ""))
        if type == "DELETED" or body.get("metadata", {}).get("deletionTimestamp"):
            return
        if first(client_states, (ns, client)) is not None:
            wakeups.wake((ns, client))
            return
        # No client to do the work: report it here (the client's daemon takes over once the
        # client exists, through the branches_by_client index).
        missing = branches.ClientState(exists=False, ready=False)
        try:
            await reconcile_branch(op, snapshot(body), missing, Indexes.empty(), op.clock(), logger)
        except KubeError as error:
            raise kopf.TemporaryError(str(error), delay=5) from None

    @kopf.on.delete(*branches_resource, registry=registry, id="branch_deleted")
    async def branch_deleted(
        name: str,
        namespace: str | None,
        uid: str,
        spec: kopf.Spec,
        status: kopf.Status,
        **_: Any,
    ) -> None:
        await delete_branch(op, namespace or "", name, uid, spec, status)

    # --- Secrets ---------------------------------------------------------------------------

    @kopf.on.event("", "v1", "secrets", registry=registry, id="secret_changed")
    def secret_changed(
        name: str,
        namespace: str | None,
        labels: Mapping[str, str],
        **kwargs: Any,
    ) -> None:
        """A Secret we write was edited or deleted, or a credentials Secret changed."""
        ns = namespace or ""
        clients_by_credentials: kopf.Index[Key, str] = kwargs["clients_by_credentials"]
        if is_managed(labels):
            client = labels.get(CLIENT_LABEL, "")
            if labels.get(ROLE_LABEL) == ROLE_CONSENT:  # lives in the operator's namespace
                ns = labels.get(CLIENT_NAMESPACE_LABEL, "")
            if client:
                wakeups.wake((ns, client))
            return
        for client in clients_by_credentials.get((ns, name), ()):
            wakeups.wake((ns, client))

    return wakeups


async def _sleep(wake: asyncio.Event, stopped: kopf.DaemonStopped, seconds: float) -> None:
    """Sleep until woken, stopped, or `seconds` passed, whichever comes first."""

    async def until_stopped() -> None:
        await stopped.wait()

    waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(until_stopped())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
