"""The key that authenticates the callback to the consent API.

The leader generates it once into a Secret in the operator's namespace (never overwritten);
the callback Deployment mounts that Secret and sends the key with each hand-over; every
replica's consent API compares what it receives with the Secret, read at most once a minute
(and again, rate-limited, when a key does not match, so a rotated key is picked up).
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Any

from .. import MANAGED_BY
from ..consent_state.contract import KEY_FIELD, KEY_SECRET
from ..kube import KubeError
from ..naming import MANAGED_BY_LABEL, ROLE_LABEL
from ..runtime.secrets import SecretApi

KEY_BYTES = 32
ROLE_CALLBACK_KEY = "callback-key"
# How long a key read from the Secret is trusted, and how often a mismatch may re-read it.
KEY_TTL = 60.0
REREAD_AFTER_MISMATCH = 5.0


def key_secret(namespace: str, key: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": KEY_SECRET,
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY, ROLE_LABEL: ROLE_CALLBACK_KEY},
        },
        "data": {KEY_FIELD: base64.b64encode(key.encode()).decode()},
    }


async def ensure_key(kube: SecretApi, namespace: str) -> None:
    """Create the key Secret unless it exists (whoever made it: it is never overwritten)."""
    if await kube.get_secret(namespace, KEY_SECRET) is not None:
        return
    try:
        await kube.create_secret(key_secret(namespace, secrets.token_urlsafe(KEY_BYTES)))
    except KubeError as error:
        if error.status != 409:
            raise


def same_secret(presented: str, expected: str) -> bool:
    """Constant-time equality of two texts. compare_digest raises TypeError on non-ASCII
    text (a 500 where a 401 is due), so it compares bytes; surrogatepass encodes even the
    lone surrogates a JSON body may carry."""
    return hmac.compare_digest(
        presented.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


class KeyCheck:
    """Does a presented key match the Secret's? Reads the Secret, never the other way round."""

    def __init__(
        self, kube: SecretApi, namespace: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.clock = clock
        self._key = ""
        self._read_at = float("-inf")

    async def accepts(self, presented: str) -> bool:
        if not presented:
            return False
        now = self.clock()
        if now - self._read_at > KEY_TTL or (
            not same_secret(presented, self._key) and (now - self._read_at > REREAD_AFTER_MISMATCH)
        ):
            await self._read(now)
        return bool(self._key) and same_secret(presented, self._key)

    async def _read(self, now: float) -> None:
        secret = await self.kube.get_secret(self.namespace, KEY_SECRET)
        data = (secret or {}).get("data") or {}
        try:
            self._key = base64.b64decode(data.get(KEY_FIELD, "")).decode().strip()
        except (ValueError, UnicodeDecodeError):
            self._key = ""
        self._read_at = now


class Throttle:
    """A token bucket: at most `burst` hand-overs at once, then `rate` per second. The
    callback forwards whatever the internet sends; this bounds what that costs the API
    server (each hand-over reads at most a few objects)."""

    def __init__(
        self, rate: float = 2.0, burst: int = 20, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def allow(self) -> bool:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def refund(self) -> None:
        """Give back one charge: what it paid for turned out not to be what the bucket bounds."""
        self._tokens = min(self.burst, self._tokens + 1)
