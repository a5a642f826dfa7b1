"""Leader election decisions on a monotonic clock (no wall-clock comparison anywhere)."""

import datetime as dt

from google_token_operator import election as leader
from google_token_operator.election import Decision, Fence, LeaseRecord, LeaseTimings, Observation

SPAN = dt.timedelta(seconds=15)


def record(holder: str, version: str = "1") -> LeaseRecord:
    return LeaseRecord(holder, SPAN, version)


def test_free_or_released_lease_is_taken() -> None:
    assert leader.decide(Observation(record(""), 0.0), "me", 0.0, SPAN) is Decision.TAKE


def test_own_lease_is_renewed() -> None:
    assert leader.decide(Observation(record("me"), 0.0), "me", 0.0, SPAN) is Decision.RENEW


def test_another_holder_is_respected_until_its_record_sat_unchanged_for_the_duration() -> None:
    seen = leader.observe(None, record("other"), 100.0)
    assert leader.decide(seen, "me", 114.9, SPAN) is Decision.WAIT
    assert leader.decide(seen, "me", 115.0, SPAN) is Decision.TAKE


def test_a_renewal_restarts_the_standbys_clock_whatever_the_clocks_say() -> None:
    seen = leader.observe(None, record("other", "1"), 100.0)
    again = leader.observe(seen, record("other", "1"), 110.0)
    assert again == seen  # the same record: the first sighting counts
    renewed = leader.observe(again, record("other", "2"), 112.0)
    assert renewed.seen_at == 112.0
    assert leader.decide(renewed, "me", 120.0, SPAN) is Decision.WAIT


def test_lease_record_reads_holder_duration_and_version() -> None:
    lease = {
        "metadata": {"resourceVersion": "42"},
        "spec": {"holderIdentity": "pod-1", "leaseDurationSeconds": 15, "renewTime": "t"},
    }
    assert leader.lease_record(lease) == LeaseRecord("pod-1", SPAN, "42|t")
    assert leader.lease_record({"spec": {"leaseDurationSeconds": "x"}}).duration == dt.timedelta(0)


def test_the_fence_closes_renew_deadline_after_the_renewal_started() -> None:
    now = [50.0]
    fence = Fence(leader.RENEW_DEADLINE, lambda: now[0])
    assert not fence.open()
    fence.extend(renewal_started=50.0)
    now[0] = 59.9
    assert fence.open()
    now[0] = 60.0
    assert not fence.open()


def test_the_fence_closes_before_a_standby_may_take_over() -> None:
    timings = LeaseTimings()
    assert timings.renew_deadline < timings.lease_duration
    assert timings.call_timeout + timings.retry_period < timings.renew_deadline
    assert timings.takeover_bound == dt.timedelta(seconds=19)
    fast = LeaseTimings(dt.timedelta(seconds=6), dt.timedelta(seconds=4), dt.timedelta(seconds=1))
    assert fast.call_timeout + fast.retry_period < fast.renew_deadline


def test_timings_out_of_order_are_refused() -> None:
    try:
        LeaseTimings(dt.timedelta(seconds=5), dt.timedelta(seconds=10), dt.timedelta(seconds=2))
    except ValueError as error:
        assert "retry period < renew deadline < lease duration" in str(error)
    else:
        raise AssertionError("accepted a renew deadline longer than the lease")


def test_micro_time() -> None:
    moment = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert leader.micro_time(moment) == "2026-01-01T12:00:00.000000Z"
