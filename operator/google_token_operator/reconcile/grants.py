"""Revoking a grant at Google, for a deletion with revokeOnDelete or a revoke on request."""

from __future__ import annotations

import kopf

from ..google_types import ErrorKind, GoogleError
from ..runtime.edges import GoogleApi


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
