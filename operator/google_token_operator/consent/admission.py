"""Which hand-overs the consent API takes now: a state it issued always, garbage throttled.

The consent API learns of the states it issued from a metadata-only watch of the pending
consent Secrets in its namespace (their names are derived from the state's hash, so a
hand-over's state is looked up without a read). A known state costs the one read that
completes it and is never refused for load; anything else is charged to the shared token
bucket, as every hand-over was before. Guessing a known state means guessing a 160-bit hash
prefix, a spent state leaves the watch, and a known state is admitted once at a time (a
replay of one's own link while it is in use pays like garbage), so the free path stays cheap.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from .. import MANAGED_BY
from ..consent_state import pending
from ..kube.api import secret_path
from ..kube.informer import Informer, WatchApi
from ..naming import MANAGED_BY_LABEL, ROLE_CONSENT, ROLE_LABEL
from .apikey import Throttle

PENDING_SELECTOR = (
    f"{MANAGED_BY_LABEL}={MANAGED_BY},{ROLE_LABEL}={ROLE_CONSENT},!{pending.OUTCOME_LABEL}"
)


def pending_expiry(body: dict[str, Any]) -> int:
    """When a watched consent Secret's state expires (Unix seconds); 0 once it is spent or
    says nothing readable (then it is not known)."""
    labels = (body.get("metadata") or {}).get("labels") or {}
    expires = str(labels.get(pending.EXPIRES_LABEL) or "")
    if labels.get(pending.OUTCOME_LABEL) or not (expires.isascii() and expires.isdigit()):
        return 0
    return int(expires[:12])  # far beyond any real expiry, and no huge integer to parse


def pending_states(kube: WatchApi, namespace: str) -> Informer[int]:
    return Informer(
        kube,
        "pending consent states",
        [secret_path(namespace)],
        pending_expiry,
        label_selector=PENDING_SELECTOR,
        metadata_only=True,
    )


class Admission:
    def __init__(
        self,
        states: Informer[int],
        namespace: str,
        throttle: Throttle,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.states = states
        self.namespace = namespace
        self.throttle = throttle
        self.clock = clock
        self._in_use: set[str] = set()

    def known(self, state: str) -> str:
        """The consent Secret's name when `state` is pending and not in use; else ''."""
        if not state:
            return ""
        name = pending.consent_secret_name(state)
        expiry = self.states.get((self.namespace, name)) or 0
        return name if expiry > self.clock() and name not in self._in_use else ""

    @contextlib.contextmanager
    def admit(self, state: str) -> Iterator[bool]:
        """Whether the hand-over of `state` may go on now; a known state always may."""
        name = self.known(state)
        if not name:
            yield self.throttle.allow()
            return
        self._in_use.add(name)
        try:
            yield True
        finally:
            self._in_use.discard(name)
