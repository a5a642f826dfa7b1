"""Leader election with a coordination.k8s.io Lease, so two replicas are safe: one acts.

The standby does not run kopf at all; it retries the Lease until the holder stops renewing
it, then takes over. A leader that cannot renew in time stops (and is restarted as a
standby), so two leaders never act at once for longer than one renew attempt.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import logging
import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

from .kube import Kube, KubeError

logger = logging.getLogger(__name__)

# A standby takes over at most LEASE_DURATION + RETRY_PERIOD after the leader died.
LEASE_DURATION = dt.timedelta(seconds=15)
RENEW_PERIOD = dt.timedelta(seconds=5)
RETRY_PERIOD = dt.timedelta(seconds=2)


class Decision(enum.Enum):
    TAKE = "take"  # free or expired: take it (counts as a leader transition)
    RENEW = "renew"  # ours: renew it
    WAIT = "wait"  # someone else holds a live lease


@dataclasses.dataclass(frozen=True)
class LeaseView:
    holder: str
    renewed_at: dt.datetime | None
    duration: dt.timedelta


def lease_view(spec: Mapping[str, Any]) -> LeaseView:
    renewed = spec.get("renewTime")
    return LeaseView(
        holder=str(spec.get("holderIdentity") or ""),
        renewed_at=dt.datetime.fromisoformat(renewed.replace("Z", "+00:00")) if renewed else None,
        duration=dt.timedelta(seconds=int(spec.get("leaseDurationSeconds") or 0)),
    )


def decide(lease: LeaseView, identity: str, now: dt.datetime) -> Decision:
    if lease.holder == identity:
        return Decision.RENEW
    if not lease.holder or lease.renewed_at is None or lease.renewed_at + lease.duration <= now:
        return Decision.TAKE
    return Decision.WAIT


def micro_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_identity() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class LeaderElection:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        identity: str,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))

    async def acquire(self) -> None:
        """Return once this process holds the Lease."""
        logger.info(f"Waiting to lead: Lease {self.namespace}/{self.name} as {self.identity}")
        while not await self._try():  # noqa: ASYNC110 - polling the API server is the point
            await asyncio.sleep(RETRY_PERIOD.total_seconds())
        logger.info(f"Leading: Lease {self.namespace}/{self.name} acquired by {self.identity}")

    async def hold(self) -> None:
        """Renew until renewal fails for longer than the lease lasts; then return (lost)."""
        last_renewed = self.clock()
        while True:
            await asyncio.sleep(RENEW_PERIOD.total_seconds())
            try:
                if await self._try():
                    last_renewed = self.clock()
                    continue
                logger.error("Another replica took the Lease; stopping")
                return
            except KubeError as error:
                logger.warning(f"Renewing the Lease failed: {error}")
            if self.clock() - last_renewed >= LEASE_DURATION - RENEW_PERIOD:
                logger.error("Could not renew the Lease in time; stopping")
                return

    async def release(self) -> None:
        """Give the Lease up on a clean stop, so a standby takes over in one retry period."""
        try:
            current = await self.kube.get_lease(self.namespace, self.name)
            spec = (current or {}).get("spec") or {}
            if current is None or spec.get("holderIdentity") != self.identity:
                return
            await self.kube.replace_lease(
                {**current, "spec": {**spec, "holderIdentity": "", "leaseDurationSeconds": 1}}
            )
        except KubeError as error:
            logger.warning(f"Releasing the Lease failed (a standby waits it out): {error}")
            return
        logger.info("Released the Lease")

    async def _try(self) -> bool:
        """One acquire-or-renew attempt; True when this process holds the Lease afterwards."""
        now = self.clock()
        current = await self.kube.get_lease(self.namespace, self.name)
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(LEASE_DURATION.total_seconds()),
            "renewTime": micro_time(now),
        }
        if current is None:
            return await self.kube.create_lease(
                self.namespace, self.name, {**spec, "acquireTime": micro_time(now)}
            )
        decision = decide(lease_view(current.get("spec") or {}), self.identity, now)
        if decision is Decision.WAIT:
            return False
        old = current.get("spec") or {}
        if decision is Decision.TAKE:
            spec["acquireTime"] = micro_time(now)
            spec["leaseTransitions"] = int(old.get("leaseTransitions") or 0) + 1
        return await self.kube.replace_lease({**current, "spec": {**old, **spec}})
