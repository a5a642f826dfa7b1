"""Errors no check foresaw, told safely: one object's trouble is logged (and stops no other
object), without the error's text, which may quote what an object or a Secret holds."""

from __future__ import annotations

import os
import traceback


def unexpected(error: BaseException) -> str:
    """For a log line or a condition: the error's type and where it was raised."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
    return f"unexpected {type(error).__name__}{where}"
