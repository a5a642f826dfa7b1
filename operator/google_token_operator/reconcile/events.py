"""Events: one per condition whose reason or status changed, not one per refresh."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, cast

import kopf

from ..conditions import WARNING_REASONS, changed_reasons


class EventSink(Protocol):
    def post(self, body: Mapping[str, Any], warning: bool, reason: str, message: str) -> None: ...


class KopfEvents:
    """Events through kopf's poster (batched, retried, never blocking a pass)."""

    def post(self, body: Mapping[str, Any], warning: bool, reason: str, message: str) -> None:
        target = cast(kopf.Body, body)  # kopf only reads apiVersion, kind and metadata
        if warning:
            kopf.warn(target, reason=reason, message=message)
        else:
            kopf.info(target, reason=reason, message=message)


def post_transitions(
    events: EventSink,
    body: Mapping[str, Any],
    before: Iterable[Mapping[str, Any]] | None,
    after: list[dict[str, Any]],
    logger: kopf.Logger,
) -> None:
    """One Event per condition whose reason changed: meaningful transitions, not every refresh."""
    for condition in changed_reasons(list(before or ()), after):
        reason = str(condition["reason"])
        warning = condition["status"] != "True" and reason in WARNING_REASONS
        events.post(body, warning, reason, str(condition["message"]))
        logger.info(f"{condition['type']}={condition['status']} ({reason}): {condition['message']}")
