"""Revoking a grant at Google, for a deletion with revokeOnDelete or a revoke on request:
never while another GoogleClient keeps a grant of the same OAuth client and account (Google
keeps one grant per pair; runtime.kept_grants, grant_sharing)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from ..google_types import ErrorKind, GoogleError
from ..grant_sharing import REVOKE_SKIPPED
from ..runtime.context import Operator
from ..runtime.edges import GoogleApi
from ..runtime.kept_grants import may_revoke
from ..tokens import TokenRecord


async def revoke_kept_grant(
    op: Operator,
    body: Mapping[str, Any],
    record: TokenRecord,
    logger: kopf.Logger,
    request: str = "",
) -> bool:
    """Revoke the grant the GoogleClient `body` keeps (`record`), unless another GoogleClient
    keeps one of the same pair: then an Event RevokeSkipped says why (posted before the
    caller writes status, so the `revoke` command finds it; `request`: the revoke request's
    value, named in it) and False."""
    meta = body["metadata"]
    holder = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
    verdict = await may_revoke(op, holder, record)
    if not verdict.revoke:
        message = f"Revoke request {request}: {verdict.message}" if request else verdict.message
        logger.info(message)
        await op.events.post_now(body, False, REVOKE_SKIPPED, message)
        return False
    await revoke_grant(op.google, record.refresh_token, logger)
    return True


async def revoke_grant(google: GoogleApi, refresh_token: str, logger: kopf.Logger) -> None:
    """Revoke at Google. A retryable failure propagates (the caller tries again later); Google
    refusing for good is logged and let go: waiting cannot make that revoke succeed."""
    try:
        revoked = await google.revoke(refresh_token)
    except GoogleError as error:
        if error.kind is ErrorKind.RETRYABLE:
            raise
        logger.warning(f"Revoking the grant at Google failed for good: {error}")
    else:
        logger.info("Revoked the grant at Google" if revoked else "The grant was already revoked")
