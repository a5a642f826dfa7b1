"""Runs the callback workload while some GoogleClient waits for consent.

Driven by GoogleClient events (which only the active replica handles, so a standby never
scales anything). Every observation re-applies the workload (a deleted callback Deployment
comes back), coalesced so a burst of events costs one apply. Scaling up is immediate;
scaling down waits `callback_idle` after consent was last wanted, so a person who just
consented still reaches the success page, and so a restart does not flap the Deployment.
While nothing changes, it is applied again at most once a minute: thousands of GoogleClient
events cost one apply, and a deleted callback Deployment still comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time

from .. import policy
from ..kube import KubeError
from ..naming import Key
from ..runtime.context import Operator
from .apikey import ensure_key
from .workload import callback_objects

logger = logging.getLogger(__name__)

# Applied again at most this often while nothing changed (a deleted callback Deployment comes
# back within it); at once when consent becomes wanted or not.
REAPPLY_EVERY = dt.timedelta(minutes=1)


def callback_wanted(
    pending: bool, last_wanted: dt.datetime, now: dt.datetime, idle: dt.timedelta
) -> bool | None:
    """True while consent is pending; False once it has not been for `idle`; None: leave the
    workload as it is."""
    if pending:
        return True
    if now - last_wanted >= idle:
        return False
    return None


class CallbackManager:
    def __init__(self, op: Operator) -> None:
        self.op = op
        self._pending: set[Key] = set()
        # Until `callback_idle` has passed since start, an unwanted workload is left alone:
        # a restart must not scale down a callback a person is using right now.
        self._last_wanted = op.clock()
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._applied: tuple[bool, float] | None = None  # what, when (monotonic)

    def observe(self, key: Key, pending: bool) -> None:
        """Note whether one client waits for consent; the workload is re-applied soon after."""
        if pending:
            self._pending.add(key)
        else:
            self._pending.discard(key)
        self._dirty.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._keep_applied(), name="callback-workload")

    async def _keep_applied(self) -> None:
        failures = 0
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            now = self.op.clock()
            settings = self.op.settings
            pending = bool(self._pending) or settings.callback_always_on
            if pending:
                self._last_wanted = now
            wanted = callback_wanted(pending, self._last_wanted, now, settings.callback_idle)
            try:
                if wanted is not None and self._due(wanted):
                    await self._apply(wanted)
                    self._applied = (wanted, time.monotonic())
                failures = 0
            except KubeError as error:
                failures += 1
                # After a failed apply (API server away, namespace missing): the operator's
                # back-off, 2 s doubled per failure up to 5 min, jittered.
                jitter = random.random()  # noqa: S311 - jitter, not a secret
                delay = policy.backoff_delay(failures, None, jitter)
                logger.warning(
                    f"Applying the callback workload failed, retrying in {delay}: {error}"
                )
                self._wake_after(delay)
                continue
            if wanted is None:  # look again once the idle time has passed
                self._wake_after(self._last_wanted + settings.callback_idle - now)

    def _due(self, wanted: bool) -> bool:
        if self._applied is None or self._applied[0] != wanted:
            return True
        since = time.monotonic() - self._applied[1]
        if since < REAPPLY_EVERY.total_seconds():
            self._wake_after(REAPPLY_EVERY - dt.timedelta(seconds=since))
            return False
        return True

    def _wake_after(self, delay: dt.timedelta) -> None:
        asyncio.get_running_loop().call_later(max(delay.total_seconds(), 0.0), self._dirty.set)

    async def _apply(self, wanted: bool) -> None:
        namespace = self.op.settings.operator_namespace
        await ensure_key(self.op.kube, namespace)  # the callback mounts it
        for desired in callback_objects(self.op.settings, namespace, wanted):
            await self.op.kube.apply_object(desired)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
