"""When to refresh and how long to back off: pure functions with the clock passed in.

Like cert-manager's renewal policies, these take plain data and return a decision, so they
are unit-tested without a cluster, a network or a real clock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

# The promise to consumers (docs/guides/consuming-tokens.md): while Google answers,
# a consumer Secret never holds a token with less than this left. A refresh window of a third
# of a 1 h token (20 min) leaves 10 min of retries before the promise is at risk.
PROMISED_REMAINING_FRACTION = 1 / 6
# Spread refreshes so thousands of clients issued at the same second do not refresh together.
MAX_JITTER = dt.timedelta(seconds=60)
JITTER_SHARE_OF_WINDOW = 0.1
# Back-off after retryable failures (429, 5xx, network): 2 s, 4 s, 8 s ... capped at 5 min.
BACKOFF_BASE = dt.timedelta(seconds=2)
BACKOFF_CAP = dt.timedelta(minutes=5)


def jitter_fraction(*seed: str) -> float:
    """A stable number in [0, 1) derived from the seed.

    Deterministic (not random.random()) so a restarted operator, or a second replica,
    computes the very same refresh time for the same token, and status stays unchanged.
    """
    digest = hashlib.sha256("\x00".join(seed).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclasses.dataclass(frozen=True)
class TokenTimes:
    """When a token was issued and when it expires."""

    issued_at: dt.datetime
    expires_at: dt.datetime

    @property
    def lifetime(self) -> dt.timedelta:
        return max(self.expires_at - self.issued_at, dt.timedelta(0))


def refresh_window(lifetime: dt.timedelta, refresh_before: dt.timedelta) -> dt.timedelta:
    """How long before expiry a token is refreshed.

    max(refreshBefore, lifetime / 3), capped at lifetime / 2 so a short-lived token is not
    refreshed in a loop.
    """
    window: dt.timedelta = min(max(refresh_before, lifetime / 3), lifetime / 2)
    return window


def refresh_due_at(token: TokenTimes, refresh_before: dt.timedelta, jitter: float) -> dt.datetime:
    """The moment the token should be refreshed (jitter in [0, 1) makes it a little earlier)."""
    window = refresh_window(token.lifetime, refresh_before)
    spread = min(MAX_JITTER, window * JITTER_SHARE_OF_WINDOW) * jitter
    return token.expires_at - min(window + spread, token.lifetime / 2)


def backoff_delay(
    attempt: int,
    retry_after: dt.timedelta | None,
    jitter: float,
    base: dt.timedelta = BACKOFF_BASE,
    cap: dt.timedelta = BACKOFF_CAP,
) -> dt.timedelta:
    """Delay before retry number `attempt` (1-based): exponential, jittered, honouring Retry-After.

    The one back-off of the operator. Full jitter would allow near-zero delays; we keep at
    least half the exponential step.
    """
    steps = max(attempt - 1, 0)
    exponential = cap if steps >= _doublings_to_cap(base, cap) else min(cap, base * 2**steps)
    delay: dt.timedelta = exponential * (0.5 + 0.5 * min(max(jitter, 0.0), 1.0))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def _doublings_to_cap(base: dt.timedelta, cap: dt.timedelta) -> int:
    """How many doublings take `base` to `cap`: past them the exponent no longer matters (and
    `2 ** attempt` of a timedelta overflows from attempt 47 on)."""
    doublings = 0
    while base > dt.timedelta(0) and base * 2**doublings < cap:
        doublings += 1
    return doublings


def promised_remaining(lifetime: dt.timedelta) -> dt.timedelta:
    """The least time left a consumer may ever see on a token of this lifetime (10 min of 1 h)."""
    return lifetime * PROMISED_REMAINING_FRACTION
