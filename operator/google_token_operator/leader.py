"""Leader election with a coordination.k8s.io Lease, fenced: two replicas never both write.

As client-go's leader election does, and on a monotonic clock throughout:
- the leader renews every RETRY_PERIOD, each attempt under a timeout; it may act only until
  RENEW_DEADLINE after the start of its last successful renewal (the fence, checked before
  every Kubernetes write), and stops (exit, restarted as a standby) once it is past;
- a standby never compares clocks: it judges the Lease expired when it has observed the
  very same record (holder, renewTime, resourceVersion) unchanged for the Lease's duration.

A standby that first saw the leader's last renewal at time t takes over no earlier than
t + LEASE_DURATION; that renewal was started before t, so the old leader's fence closed by
then minus (LEASE_DURATION - RENEW_DEADLINE): the margin left for the two monotonic clocks
to disagree in rate, and for a write already sent to land.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import time
from collections.abc import Callable

from .election import (
    Decision,
    Fence,
    LeaseTimings,
    Monotonic,
    Observation,
    decide,
    lease_record,
    micro_time,
    observe,
)
from .kube import Kube, KubeError

logger = logging.getLogger(__name__)


def default_identity() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class LeaderElection:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        identity: str,
        timings: LeaseTimings | None = None,
        monotonic: Monotonic = time.monotonic,
        wall_clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timings = timings or LeaseTimings()
        self.monotonic = monotonic
        self.wall_clock = wall_clock or (lambda: dt.datetime.now(dt.UTC))
        self.fence = Fence(self.timings.renew_deadline, monotonic)
        self._observation: Observation | None = None

    async def acquire(self) -> None:
        """Return once this process holds the Lease (its fence open)."""
        logger.info(f"Waiting to lead: Lease {self.namespace}/{self.name} as {self.identity}")
        while not await self._attempt_quietly():  # noqa: ASYNC110 - polling is the point
            await asyncio.sleep(self.timings.retry_period.total_seconds())
        logger.info(f"Leading: Lease {self.namespace}/{self.name} acquired by {self.identity}")

    async def hold(self) -> None:
        """Renew every RETRY_PERIOD; return (lost) when the fence closes before a renewal
        succeeded, or another replica holds the Lease."""
        while True:
            retry = self.timings.retry_period.total_seconds()
            await asyncio.sleep(min(retry, max(self.fence.remaining(), 0)))
            if not self.fence.open():
                logger.error("Could not renew the Lease in time; stopping (no more writes)")
                return
            try:
                if not await self._attempt():
                    logger.error("Another replica holds the Lease; stopping")
                    return
            except KubeError as error:
                logger.warning(
                    f"Renewing the Lease failed ({error}); "
                    f"{max(self.fence.remaining(), 0):.1f}s left to renew"
                )

    async def release(self) -> None:
        """Give the Lease up on a clean stop, so a standby takes over in one retry period."""
        self.fence.until = float("-inf")  # no more writes from here, whatever happens
        try:
            async with asyncio.timeout(self.timings.call_timeout.total_seconds()):
                current = await self.kube.get_lease(self.namespace, self.name)
                spec = (current or {}).get("spec") or {}
                if current is None or spec.get("holderIdentity") != self.identity:
                    return
                released = {**spec, "holderIdentity": "", "leaseDurationSeconds": 1}
                await self.kube.replace_lease({**current, "spec": released}, guarded=False)
        except (KubeError, TimeoutError) as error:
            logger.warning(f"Releasing the Lease failed (a standby waits it out): {error}")
            return
        logger.info("Released the Lease")

    async def _attempt_quietly(self) -> bool:
        """A standby's attempt: an API server that cannot be reached means "not yet"."""
        try:
            return await self._attempt()
        except KubeError as error:
            logger.warning(f"Reading the Lease failed ({error}); trying again")
            return False

    async def _attempt(self) -> bool:
        """One acquire-or-renew step; True when this process holds the Lease afterwards.
        Raises KubeError when the API server cannot be reached in time."""
        started = self.monotonic()
        try:
            async with asyncio.timeout(self.timings.call_timeout.total_seconds()):
                holds = await self._step(started)
        except TimeoutError:
            raise KubeError(0, "Timeout", "the Lease call timed out") from None
        if holds:
            self.fence.extend(started)
        return holds

    async def _step(self, started: float) -> bool:
        now = self.wall_clock()
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.timings.lease_duration.total_seconds()),
            "renewTime": micro_time(now),
        }
        current = await self.kube.get_lease(self.namespace, self.name)
        if current is None:
            return await self.kube.create_lease(
                self.namespace, self.name, {**spec, "acquireTime": micro_time(now)}
            )
        self._observation = observe(self._observation, lease_record(current), started)
        decision = decide(self._observation, self.identity, started, self.timings.lease_duration)
        if decision is Decision.WAIT:
            return False
        old = current.get("spec") or {}
        if decision is Decision.TAKE:
            spec["acquireTime"] = micro_time(now)
            transitions = old.get("leaseTransitions")
            spec["leaseTransitions"] = (transitions if isinstance(transitions, int) else 0) + 1
        replaced = await self.kube.replace_lease(
            {**current, "spec": {**old, **spec}}, guarded=False
        )
        return replaced is not None
