"""A GoogleClient whose pass failed for a reason the operator did not foresee (a bug, or an
input nobody clamped yet): its Ready condition names it, instead of keeping an old answer that
would hide it, and its daemon backs off as for any failure. The next pass that gets through
writes Ready again."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import kopf

from ..clients import generation_of
from ..conditions import merge_conditions, with_ready_failed
from ..kube import WriteFenced
from ..runtime.context import Operator
from ..runtime.events import post_transitions
from ..unforeseen import unexpected
from .client_pass import ClientMemory


async def report_failure(
    op: Operator,
    body: Mapping[str, Any],
    memory: ClientMemory,
    error: Exception,
    retry_in: dt.timedelta,
    logger: kopf.Logger,
) -> None:
    meta = body["metadata"]
    namespace, name = str(meta["namespace"]), str(meta["name"])
    before = memory.status.get("conditions")
    message = (
        f"the operator failed on this GoogleClient ({unexpected(error)}); trying again in "
        f"{retry_in}; see the operator's log"
    )
    merged = merge_conditions(
        before, with_ready_failed(before, message), generation_of(body), op.clock()
    )
    op.metrics.ready.labels("GoogleClient", namespace, name).set(0)
    try:
        version = await op.kube.patch_status(
            "googleclients", namespace, name, {"conditions": merged}, memory.version
        )
    except WriteFenced:
        return  # this replica no longer leads: its daemon ends at the next step
    except Exception as again:  # the next pass writes the status again anyway
        logger.error(f"GoogleClient status not written ({unexpected(again)})")
        return
    memory.status = {**memory.status, "conditions": merged}
    memory.version = version or memory.version
    post_transitions(op.events, body, before, merged, logger)
