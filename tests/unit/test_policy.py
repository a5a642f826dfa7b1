import datetime as dt

import pytest

from google_token_operator import policy

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def token(lifetime: dt.timedelta) -> policy.TokenTimes:
    return policy.TokenTimes(issued_at=T0, expires_at=T0 + lifetime)


@pytest.mark.parametrize(
    ("lifetime", "refresh_before", "window"),
    [
        (HOUR, dt.timedelta(0), dt.timedelta(minutes=20)),  # a third of the lifetime
        (HOUR, dt.timedelta(minutes=25), dt.timedelta(minutes=25)),  # refreshBefore wins
        (HOUR, dt.timedelta(minutes=50), dt.timedelta(minutes=30)),  # capped at half
        (dt.timedelta(seconds=60), dt.timedelta(minutes=15), dt.timedelta(seconds=30)),
    ],
)
def test_refresh_window(lifetime: dt.timedelta, refresh_before: dt.timedelta, window: dt.timedelta):
    assert policy.refresh_window(lifetime, refresh_before) == window


def test_due_time_without_jitter_is_window_before_expiry():
    assert policy.refresh_due_at(token(HOUR), dt.timedelta(0), 0.0) == T0 + dt.timedelta(minutes=40)


def test_jitter_only_moves_the_refresh_earlier_and_by_at_most_a_minute():
    plain = policy.refresh_due_at(token(HOUR), dt.timedelta(0), 0.0)
    jittered = policy.refresh_due_at(token(HOUR), dt.timedelta(0), 0.999)
    assert plain - dt.timedelta(seconds=60) <= jittered < plain


def test_short_token_is_never_refreshed_before_half_its_life():
    # With a huge refreshBefore and full jitter, still no refresh loop.
    due = policy.refresh_due_at(token(dt.timedelta(seconds=10)), dt.timedelta(hours=1), 0.999)
    assert due == T0 + dt.timedelta(seconds=5)


@pytest.mark.parametrize("lifetime", [dt.timedelta(seconds=60), HOUR, dt.timedelta(hours=2)])
@pytest.mark.parametrize("jitter", [0.0, 0.5, 0.999])
def test_due_time_keeps_the_promise_to_consumers(lifetime: dt.timedelta, jitter: float):
    due = policy.refresh_due_at(token(lifetime), dt.timedelta(0), jitter)
    assert (T0 + lifetime) - due >= policy.promised_remaining(lifetime) * 2


def test_jitter_fraction_is_stable_and_spread():
    assert policy.jitter_fraction("uid-1", "x") == policy.jitter_fraction("uid-1", "x")
    values = [policy.jitter_fraction(f"uid-{n}") for n in range(200)]
    assert all(0 <= value < 1 for value in values)
    assert len({round(value, 2) for value in values}) > 50


def test_backoff_grows_exponentially_and_is_capped():
    delays = [policy.backoff_delay(attempt, None, 0.999) for attempt in range(1, 12)]
    assert delays[0] < delays[1] < delays[2]
    assert max(delays) <= policy.BACKOFF_CAP
    assert policy.backoff_delay(1, None, 0.0) >= policy.BACKOFF_BASE / 2


def test_backoff_honours_retry_after():
    assert policy.backoff_delay(1, dt.timedelta(seconds=30), 0.0) == dt.timedelta(seconds=30)
