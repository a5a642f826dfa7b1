"""Kubernetes-style status conditions as plain data (pure functions)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .timeutil import format_rfc3339


@dataclasses.dataclass(frozen=True)
class Condition:
    """What a condition should say; the transition time is filled in by `merge_conditions`."""

    type: str
    status: bool
    reason: str
    message: str

    @property
    def status_text(self) -> str:
        return "True" if self.status else "False"


def merge_conditions(
    current: Sequence[Mapping[str, Any]] | None,
    desired: Iterable[Condition],
    generation: int,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """The conditions list to store: lastTransitionTime moves only when the status flips.

    Keeping the old timestamp when nothing flipped is what makes a status write a no-op
    when nothing changed.
    """
    previous = {str(item.get("type")): item for item in current or ()}
    merged = []
    for condition in desired:
        before = previous.get(condition.type, {})
        changed = before.get("status") != condition.status_text
        merged.append(
            {
                "type": condition.type,
                "status": condition.status_text,
                "reason": condition.reason,
                "message": condition.message,
                "lastTransitionTime": (
                    format_rfc3339(now) if changed else before.get("lastTransitionTime")
                ),
                "observedGeneration": generation,
            }
        )
    return merged


def find_condition(conditions: Sequence[Mapping[str, Any]] | None, kind: str) -> Mapping[str, Any]:
    for item in conditions or ():
        if item.get("type") == kind:
            return item
    return {}


def changed_reasons(
    before: Sequence[Mapping[str, Any]] | None, after: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """Conditions whose reason or status changed: the transitions worth an Event."""
    return [
        item
        for item in after
        if (old := find_condition(before, str(item["type"]))).get("reason") != item["reason"]
        or old.get("status") != item["status"]
    ]
