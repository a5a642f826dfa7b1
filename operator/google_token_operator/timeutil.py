"""Durations and timestamps in the forms the CRDs and Secrets use (pure functions)."""

from __future__ import annotations

import datetime as dt
import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


# Longer than any duration the operator has a use for; a bound keeps arithmetic in range.
MAX_DURATION = dt.timedelta(days=3650)


def parse_duration(text: str) -> dt.timedelta:
    """Parse a Go-style duration such as ``90s``, ``15m`` or ``1h30m``.

    Raises ValueError with a message that shows the accepted form.
    """
    cleaned = text.strip()
    if len(cleaned) > 64 or not _DURATION.match(cleaned):
        raise ValueError(f"{text[:64]!r} is not a duration; use a form like 90s, 15m or 1h30m")
    seconds = sum(
        float(amount) * _UNIT_SECONDS[unit] for amount, unit in _DURATION_PART.findall(cleaned)
    )
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"{text!r} is longer than {MAX_DURATION.days} days")
    return dt.timedelta(seconds=seconds)


def format_rfc3339(moment: dt.datetime) -> str:
    """UTC, second precision, with a ``Z``: the form of every timestamp we write."""
    utc = moment.astimezone(dt.UTC).replace(microsecond=0, tzinfo=None)
    return utc.isoformat() + "Z"


def parse_rfc3339(text: str) -> dt.datetime:
    """Parse what format_rfc3339 (or Kubernetes) writes into an aware UTC datetime."""
    if len(text) > 64:
        raise ValueError("not a timestamp")
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)
