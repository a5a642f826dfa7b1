"""Day-2 requests made by annotation on a GoogleClient, and their acknowledgement (pure).

A person (or `google-token-operator refresh|reauthorize|revoke`) sets an annotation
`google-token-operator.dev/<kind>-requested-at` to any value, a timestamp say. A request is
open while its annotation's value differs from `status.handledRequests.<kind>`; once handled,
the operator writes the value there. So each distinct value is acted on once, repeating the
same value does nothing, and an operator restarted halfway simply finds the request still
open: requests are level-based, like everything else here.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from collections.abc import Mapping
from typing import Any

from . import GROUP


class Request(enum.StrEnum):
    REFRESH = "refresh"  # one refresh now, even if the token is fresh
    REAUTHORIZE = "reauthorize"  # a fresh consent URL; the current grant works until replaced
    REVOKE = "revoke"  # revoke at Google, drop the refresh token, remove consumer Secrets

    @property
    def annotation(self) -> str:
        return f"{GROUP}/{self.value}-requested-at"


ANNOTATIONS = frozenset(kind.annotation for kind in Request)
_KINDS = frozenset(kind.value for kind in Request)

# A requested refresh calls Google at most this often per client: a loop writing annotations
# cannot hammer Google (50 requests within a minute make at most 2 calls).
REQUESTED_REFRESH_INTERVAL = dt.timedelta(seconds=60)

# Annotation values can be long (256 KiB for all of them); status keeps a short stand-in.
MAX_ACK_LENGTH = 128


def ack_of(value: str) -> str:
    """What `status.handledRequests.<kind>` holds once `value` was handled: the value itself,
    or for a very long one a digest of it."""
    if len(value) <= MAX_ACK_LENGTH:
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def open_requests(annotations: Mapping[str, Any], handled: Any) -> dict[Request, str]:
    """The requests not handled yet, each with the acknowledgement to write once it is."""
    done = handled if isinstance(handled, Mapping) else {}
    opened = {}
    for kind in Request:
        value = annotations.get(kind.annotation)
        if isinstance(value, str) and value and ack_of(value) != done.get(kind.value):
            opened[kind] = ack_of(value)
    return opened


def acknowledged(
    handled: Any, opened: Mapping[Request, str], done: frozenset[Request]
) -> dict[str, str] | None:
    """`status.handledRequests` after a pass that handled `done` of the `opened` requests
    (None when there is nothing to keep)."""
    merged = {
        str(kind): str(value)
        for kind, value in (handled.items() if isinstance(handled, Mapping) else ())
        if kind in _KINDS and isinstance(value, str)
    }
    merged |= {kind.value: opened[kind] for kind in done if kind in opened}
    return merged or None


def requested_refresh_at(
    last_issued: dt.datetime | None, last_requested_call: dt.datetime | None
) -> dt.datetime | None:
    """The earliest moment a requested refresh may call Google: REQUESTED_REFRESH_INTERVAL
    after the current token was issued and after the last call made on request."""
    moments = [moment for moment in (last_issued, last_requested_call) if moment is not None]
    return max(moments) + REQUESTED_REFRESH_INTERVAL if moments else None
