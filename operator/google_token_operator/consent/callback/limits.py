"""How many hand-overs one client address may cause: a small token bucket per address.

Only what turns out to be garbage (no state, or a state the operator does not know) keeps its
charge, so a person completing consents, however many and however fast, is never refused,
while one address flooding the callback with made-up states soon is. The buckets live in an
LRU map with a hard cap: a flood from ever new addresses evicts the oldest bucket (a full one
is no different from none) instead of growing the map.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable

from ..apikey import Throttle

RATE = 1.0  # garbage hand-overs per second and address, once the burst is spent
BURST = 10
MAX_ADDRESSES = 4096
# IPv6 clients get a /64 each; one bucket per address there would be one per attempt.
IPV6_PREFIX = 64


def client_key(address: str) -> str:
    """The bucket an address draws on: itself for IPv4, its /64 for IPv6."""
    try:
        parsed = ipaddress.ip_address(address.strip())
    except ValueError:
        return address.strip()[:64]
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/{IPV6_PREFIX}", strict=False))
    return str(parsed)


def client_address(peer: str | None, forwarded_for: str, trust_proxy: bool) -> str:
    """Who sent the request: the peer, or behind a trusted proxy the address it appended last
    to X-Forwarded-For (what came before it is the client's own word)."""
    if trust_proxy:
        last = forwarded_for.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return peer or ""


class AddressLimits:
    def __init__(
        self,
        rate: float = RATE,
        burst: int = BURST,
        capacity: int = MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.capacity = capacity
        self.clock = clock
        self._buckets: OrderedDict[str, Throttle] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def charge(self, address: str) -> Throttle | None:
        """The bucket charged for one hand-over from `address`; None when it is empty."""
        key = client_key(address)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = Throttle(self.rate, self.burst, self.clock)
            self._buckets[key] = bucket
            if len(self._buckets) > self.capacity:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket if bucket.allow() else None
