"""kopf handlers, for GoogleClients only, and thin: they run passes and wake them.

- One daemon per GoogleClient is the only actor that calls Google for it: it sleeps until
  the pure policy says the next refresh is due, or until something it depends on changes
  (its spec, its Branches, its Secrets or its credentials Secret: see runtime.cluster).
  See docs/design/2026-11-26-daemon-per-client.md for why a daemon with a computed sleep
  rather than a fixed-interval timer.
- Branches and Secrets are not kopf's: the operator's own watches (runtime.cluster) keep a
  compact view of them, so kopf never holds a body per Secret of the cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import kopf

from . import GROUP, VERSION, policy, wakeups
from .consent.manager import CallbackManager
from .google_types import GoogleError
from .kube import KubeError, StatusConflict, WriteFenced
from .naming import Key
from .reconcile.client_failure import report_failure
from .reconcile.client_pass import ClientMemory, ClientPass
from .reconcile.deletion import delete_client
from .runtime.context import Operator
from .unforeseen import unexpected

CLIENTS = (GROUP, VERSION, "googleclients")


def register(registry: kopf.OperatorRegistry, op: Operator, callbacks: CallbackManager) -> None:
    # A pass is short; on stop it may finish (backoff), then it is cancelled (timeout).
    @kopf.daemon(
        *CLIENTS,
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
        uid: str | None,
        logger: kopf.Logger,
        **_: Any,
    ) -> None:
        await op.cluster.synced()
        key = (namespace or "", name)
        wake = op.cluster.wakeups.event(key)
        meta = body.get("metadata") or {}
        memory = ClientMemory(
            status=dict(body.get("status") or {}), version=str(meta.get("resourceVersion") or "")
        )
        failures = 0
        reread = False
        while not stopped:
            wake.clear()
            try:
                async with op.pass_slots:  # thousands due at once take turns
                    op.metrics.client_passes.inc()
                    current = await _read_again(op, key, body, memory) if reread else body
                    next_at = await ClientPass(op, current, logger).run(memory)
                failures = 0
                reread = False
            except WriteFenced:
                return  # this replica no longer leads; it is stopping
            except Exception as error:
                # Whatever one client's pass meets, its daemon backs off and tries again.
                if isinstance(error, StatusConflict) and not reread:
                    # Changed since the status the pass began from (a spec edit, a request,
                    # a foreign status write): start again at once from a fresh read.
                    next_at = op.clock()
                else:  # a conflict again backs off too: no tight loop against a writer
                    failures += 1
                    delay = policy.backoff_delay(
                        failures, None, policy.jitter_fraction(uid or name, str(failures))
                    )
                    known = isinstance(error, (KubeError, GoogleError))
                    why = str(error) if known else unexpected(error)
                    logger.warning(f"Reconciling failed, retrying in {delay}: {why}")
                    if not known:
                        await report_failure(op, body, memory, error, delay, logger)
                    next_at = op.clock() + delay
                reread = isinstance(error, StatusConflict)
            await _sleep(wake, stopped, max((next_at - op.clock()).total_seconds(), 0.0))

    # What of a GoogleClient, when it changes, calls for a pass now: see wakeups.
    essences: dict[Key, wakeups.ClientEssence] = {}

    # async: kopf runs plain functions in a thread, and the manager needs the event loop.
    @kopf.on.event(*CLIENTS, registry=registry, id="google_client_changed")
    async def google_client_changed(
        name: str, namespace: str | None, type: str, meta: kopf.Meta, status: kopf.Status, **_: Any
    ) -> None:
        key = (namespace or "", name)
        essence = wakeups.client_essence(meta)
        if type == "DELETED":
            essences.pop(key, None)
        elif wakeups.client_wakes(essences.get(key), essence):
            essences[key] = essence
            op.cluster.wakeups.wake(key)
        callbacks.observe(key, pending=type != "DELETED" and bool(status.get("authorization")))

    @kopf.on.delete(*CLIENTS, registry=registry, id="google_client_deleted")
    async def google_client_deleted(
        body: kopf.Body, uid: str | None, retry: int, logger: kopf.Logger, **_: Any
    ) -> None:
        await op.cluster.synced()
        try:
            await delete_client(op, body, logger)
        except (GoogleError, KubeError) as error:  # only retryable ones reach here
            retry_after = error.retry_after if isinstance(error, GoogleError) else None
            delay = policy.backoff_delay(
                retry + 1, retry_after, policy.jitter_fraction(uid or "", str(retry))
            )
            raise kopf.TemporaryError(
                f"Deleting failed, retrying in {delay}: {error}", delay=delay.total_seconds()
            ) from None


async def _read_again(
    op: Operator, key: Key, body: kopf.Body, memory: ClientMemory
) -> Mapping[str, Any]:
    """The GoogleClient as it is now (kopf's body may lag), its status and version kept."""
    fresh = await op.kube.get_resource("googleclients", *key)
    if fresh is None:  # deleted: kopf stops the daemon
        return body
    memory.status = dict(fresh.get("status") or {})
    memory.version = str((fresh.get("metadata") or {}).get("resourceVersion") or "")
    return fresh


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
