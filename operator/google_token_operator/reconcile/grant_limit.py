"""Google's 100-token limit made visible: how many GoogleClients share each (OAuth client,
account) pair, counted over the leader's watch now and then; the gauge of the largest share,
and an Event GrantLimitNear on each GoogleClient of a pair past grant_sharing.GRANT_LIMIT_NEAR
(once each time it passes the mark, and again after a restart)."""

from __future__ import annotations

import asyncio
import logging

from ..grant_sharing import (
    GRANT_LIMIT_NEAR_EVENT,
    grant_limit_message,
    holders_by_pair,
    largest_sharing,
    near_limit,
)
from ..naming import API_VERSION, Key
from ..runtime.context import Operator
from ..runtime.kept_grants import watched_grants
from ..unforeseen import unexpected

logger = logging.getLogger(__name__)

# How often the grants are counted: a consent lands in seconds, and the count reads only the
# watch (no API call).
COUNT_PERIOD = 10.0


class GrantLimit:
    def __init__(self, op: Operator) -> None:
        self.op = op
        self._told: dict[Key, int] = {}

    async def run(self) -> None:
        await self.op.cluster.synced()
        while True:
            try:
                self.count()
            except Exception as error:  # the count is a warning light: it must not go out
                logger.error(f"Counting the shared grants failed: {unexpected(error)}")
            await asyncio.sleep(COUNT_PERIOD)

    def count(self) -> None:
        """Set the gauge; tell each GoogleClient that has just passed the mark."""
        holders = holders_by_pair(watched_grants(self.op))
        self.op.metrics.grant_sharing_max.set(largest_sharing(holders))
        near = near_limit(holders)
        for key in sorted(near.keys() - self._told.keys()):
            client = self.op.cluster.clients.get(key)
            if client is None:
                continue
            involved = {
                "apiVersion": API_VERSION,
                "kind": "GoogleClient",
                "metadata": {"namespace": key[0], "name": key[1], "uid": client.uid},
            }
            message = grant_limit_message(near[key])
            self.op.events.post(involved, True, GRANT_LIMIT_NEAR_EVENT, message)
            logger.warning(f"GoogleClient {key[0]}/{key[1]}: {message}")
        self._told = near
