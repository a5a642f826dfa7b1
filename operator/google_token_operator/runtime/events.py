"""Events: one per condition whose reason or status changed, not one per refresh."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import kopf

from ..builders import event_object
from ..conditions import WARNING_REASONS, changed_reasons
from ..kube import KubeError
from ..kube.informer import Requests

logger = logging.getLogger(__name__)


class EventSink(Protocol):
    def post(self, body: Mapping[str, Any], warning: bool, reason: str, message: str) -> None: ...

    async def post_now(
        self, body: Mapping[str, Any], warning: bool, reason: str, message: str
    ) -> None: ...


class KubeEvents:
    """Events posted by the operator's own client, in the background, by a few workers: a pass
    never waits for one, a burst of thousands waits its turn in a queue instead of holding a
    request each, and one that cannot be posted is logged and dropped (Events are best
    effort; so is a queue that overflows)."""

    WORKERS = 2
    QUEUE = 10_000

    def __init__(self, kube: Requests, clock: Callable[[], dt.datetime]) -> None:
        self.kube = kube
        self.clock = clock
        self._queue: asyncio.Queue[dict[str, Any]] | None = None
        self._workers: list[asyncio.Task[None]] = []

    def post(self, body: Mapping[str, Any], warning: bool, reason: str, message: str) -> None:
        if self._queue is None:
            self._queue = asyncio.Queue(self.QUEUE)
            self._workers = [
                asyncio.get_running_loop().create_task(self._send(), name=f"events-{index}")
                for index in range(self.WORKERS)
            ]
        try:
            self._queue.put_nowait(event_object(body, warning, reason, message, self.clock()))
        except asyncio.QueueFull:
            logger.info(f"Too many Events waiting; dropped {reason}")

    async def post_now(
        self, body: Mapping[str, Any], warning: bool, reason: str, message: str
    ) -> None:
        """Post at once, for an Event that must exist before the status written next says
        what it is about (a failure is logged: still best effort)."""
        await self._deliver(event_object(body, warning, reason, message, self.clock()))

    async def _send(self) -> None:
        assert self._queue is not None
        while True:
            await self._deliver(await self._queue.get())

    async def _deliver(self, event: dict[str, Any]) -> None:
        namespace = event["metadata"]["namespace"]
        try:
            await self.kube.request("POST", f"/api/v1/namespaces/{namespace}/events", body=event)
        except KubeError as error:
            logger.info(f"Could not post Event {event['reason']}: {error}")


def post_transitions(
    events: EventSink,
    body: Mapping[str, Any],
    before: Iterable[Mapping[str, Any]] | None,
    after: list[dict[str, Any]],
    logger: kopf.Logger,
) -> None:
    """One Event per condition whose reason changed: meaningful transitions, not every refresh."""
    for condition in changed_reasons(list(before or ()), after):
        reason = str(condition["reason"])
        warning = condition["status"] != "True" and reason in WARNING_REASONS
        events.post(body, warning, reason, str(condition["message"]))
        logger.info(f"{condition['type']}={condition['status']} ({reason}): {condition['message']}")
