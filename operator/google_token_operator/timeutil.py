"""Durations and timestamps in the forms the CRDs and Secrets use (pure functions)."""

from __future__ import annotations

import datetime as dt
import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$", re.ASCII)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


# Longer than any duration the operator has a use for; a bound keeps arithmetic in range.
MAX_DURATION = dt.timedelta(days=3650)
# Every timestamp read (from a Secret, a status, Google) is clamped into this range. Nothing
# the operator handles happened before 1970 or happens after 9000, and the range keeps about
# a thousand years from Python's limits (years 1 and 9999), so adding or subtracting any
# duration the operator uses (at most MAX_DURATION) to a timestamp read cannot overflow.
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)


class TimeFormatError(ValueError):
    """A duration or timestamp that cannot be read; the message shows the accepted form."""


def parse_duration(text: str) -> dt.timedelta:
    """Parse a Go-style duration such as ``90s``, ``15m`` or ``1h30m``.

    Raises TimeFormatError with a message that shows the accepted form.
    """
    cleaned = text.strip()
    if len(cleaned) > 64 or not _DURATION.match(cleaned):
        raise TimeFormatError(f"{text[:64]!r} is not a duration; use a form like 90s, 15m or 1h30m")
    seconds = sum(
        float(amount) * _UNIT_SECONDS[unit] for amount, unit in _DURATION_PART.findall(cleaned)
    )
    if seconds > MAX_DURATION.total_seconds():
        raise TimeFormatError(f"{text!r} is longer than {MAX_DURATION.days} days")
    return dt.timedelta(seconds=seconds)


def is_ascii_number(text: str) -> bool:
    """A whole number of seconds as text, in ASCII digits: str.isdigit() also says yes to
    "²", which int() then refuses with a ValueError."""
    return text.isascii() and text.isdigit()


def format_rfc3339(moment: dt.datetime) -> str:
    """UTC, second precision, with a ``Z``: the form of every timestamp we write."""
    utc = moment.astimezone(dt.UTC).replace(microsecond=0, tzinfo=None)
    return utc.isoformat() + "Z"


def parse_rfc3339(text: str) -> dt.datetime:
    """Parse what format_rfc3339 (or Kubernetes) writes into an aware UTC datetime, clamped
    to [EARLIEST, LATEST]; TimeFormatError when it is no timestamp."""
    if len(text) > 64:
        raise TimeFormatError("not a timestamp")
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise TimeFormatError(f"{text!r} is not a timestamp like 2024-05-01T12:00:00Z") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return clamp_moment(value)


def clamp_moment(moment: dt.datetime) -> dt.datetime:
    """An aware moment in UTC within [EARLIEST, LATEST] (compared before converting: year 1
    at +01:00 has no UTC form)."""
    if moment < EARLIEST:
        return EARLIEST
    if moment > LATEST:
        return LATEST
    return moment.astimezone(dt.UTC)
