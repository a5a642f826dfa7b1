"""Leader election decisions, pure: timings, what a Lease record says, when a standby may take
over, and the fence that says until when the leader may write (the loop is in `leader`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import time
from collections.abc import Callable, Mapping
from typing import Any

from .timeutil import MAX_DURATION

# client-go's defaults; settings LEADER_LEASE_DURATION, LEADER_RENEW_DEADLINE and
# LEADER_RETRY_PERIOD change them (all replicas alike).
LEASE_DURATION = dt.timedelta(seconds=15)
RENEW_DEADLINE = dt.timedelta(seconds=10)
RETRY_PERIOD = dt.timedelta(seconds=2)
# One call to the API server during an election step may take at most this long.
CALL_TIMEOUT = dt.timedelta(seconds=4)


@dataclasses.dataclass(frozen=True)
class LeaseTimings:
    lease_duration: dt.timedelta = LEASE_DURATION
    renew_deadline: dt.timedelta = RENEW_DEADLINE
    retry_period: dt.timedelta = RETRY_PERIOD

    def __post_init__(self) -> None:
        if not self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election needs retry period < renew deadline < lease duration, got "
                f"{self.retry_period}, {self.renew_deadline}, {self.lease_duration}"
            )

    @property
    def call_timeout(self) -> dt.timedelta:
        """Short enough that a stuck call leaves time for another try before the deadline."""
        return min(CALL_TIMEOUT, (self.renew_deadline - self.retry_period) / 2)

    @property
    def takeover_bound(self) -> dt.timedelta:
        """How long after the leader stops renewing a standby leads at the latest: it may
        first see the last renewal a retry period late, and looks again every retry period."""
        return self.lease_duration + 2 * self.retry_period


Monotonic = Callable[[], float]


class Decision(enum.Enum):
    TAKE = "take"  # free, released, or unchanged for a whole lease duration: take it
    RENEW = "renew"  # ours: renew it
    WAIT = "wait"  # someone else holds a live lease


@dataclasses.dataclass(frozen=True)
class LeaseRecord:
    """What of a Lease the election looks at; `version` tells one renewal from the next."""

    holder: str
    duration: dt.timedelta
    version: str


@dataclasses.dataclass(frozen=True)
class Observation:
    """A record, and when (monotonic seconds) this process first saw it."""

    record: LeaseRecord
    seen_at: float


def lease_record(lease: Mapping[str, Any]) -> LeaseRecord:
    spec = lease.get("spec") or {}
    seconds = spec.get("leaseDurationSeconds")
    seconds = seconds if isinstance(seconds, int) and not isinstance(seconds, bool) else 0
    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        # Clamped: another holder's huge duration must not overflow (it still means "wait").
        duration=dt.timedelta(seconds=min(max(seconds, 0), MAX_DURATION.total_seconds())),
        version=str((lease.get("metadata") or {}).get("resourceVersion") or "")
        + "|"
        + str(spec.get("renewTime") or ""),
    )


def observe(previous: Observation | None, record: LeaseRecord, now: float) -> Observation:
    """Keep the time a record was first seen; a changed record starts the clock again."""
    if previous is not None and previous.record == record:
        return previous
    return Observation(record, now)


def decide(
    observation: Observation, identity: str, now: float, lease_duration: dt.timedelta
) -> Decision:
    record = observation.record
    if record.holder == identity:
        return Decision.RENEW
    if not record.holder:
        return Decision.TAKE
    if now - observation.seen_at >= max(record.duration, lease_duration).total_seconds():
        return Decision.TAKE
    return Decision.WAIT


def micro_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Fence:
    """Until when this replica may write: the start of its last renewal + the renew deadline."""

    def __init__(
        self, renew_deadline: dt.timedelta = RENEW_DEADLINE, monotonic: Monotonic = time.monotonic
    ) -> None:
        self.renew_deadline = renew_deadline
        self.monotonic = monotonic
        self.until = float("-inf")

    def extend(self, renewal_started: float) -> None:
        self.until = max(self.until, renewal_started + self.renew_deadline.total_seconds())

    def open(self) -> bool:
        return self.monotonic() < self.until

    def remaining(self) -> float:
        return self.until - self.monotonic()
