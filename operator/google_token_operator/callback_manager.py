"""Runs the callback workload while some GoogleClient waits for consent.

Driven by GoogleClient events (which only the active replica handles, so a standby never
scales anything). Scaling up is immediate; scaling down waits `callback_idle` so a person
who just consented still reaches the success page, and so a restart does not flap.
"""

from __future__ import annotations

import asyncio
import contextlib

from .callback_workload import callback_objects
from .reconciler import Operator

Key = tuple[str, str]


class CallbackManager:
    def __init__(self, op: Operator) -> None:
        self.op = op
        self._pending: set[Key] = set()
        self._applied: bool | None = None
        self._lock = asyncio.Lock()
        self._scale_down: asyncio.Task[None] | None = None

    @property
    def wanted(self) -> bool:
        return bool(self._pending) or self.op.settings.callback_always_on

    async def observe(self, key: Key, pending: bool) -> None:
        """Note whether one client waits for consent; apply the workload if that changes it."""
        if pending:
            self._pending.add(key)
        else:
            self._pending.discard(key)
        if self.wanted:
            self._cancel_scale_down()
            await self._apply(True)
        elif self._applied is not False and self._scale_down is None:
            self._scale_down = asyncio.create_task(self._scale_down_later())

    async def _scale_down_later(self) -> None:
        try:
            await asyncio.sleep(self.op.settings.callback_idle.total_seconds())
            if not self.wanted:
                await self._apply(False)
        finally:
            self._scale_down = None

    def _cancel_scale_down(self) -> None:
        if self._scale_down is not None:
            self._scale_down.cancel()
            self._scale_down = None

    async def _apply(self, wanted: bool) -> None:
        async with self._lock:
            if self._applied == wanted:
                return
            namespace = self.op.settings.operator_namespace
            for desired in callback_objects(self.op.settings, namespace, wanted):
                await self.op.kube.apply_object(desired)
            self._applied = wanted

    async def close(self) -> None:
        task = self._scale_down
        self._cancel_scale_down()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
