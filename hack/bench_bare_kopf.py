"""The bare-kopf floors for `make bench`: kopf watching GoogleClients and Branches with handlers
that do nothing, so the benchmark can say what the operator costs beyond kopf itself.

    python -m kopf run --standalone --all-namespaces hack/bench_bare_kopf.py

With BENCH_FLOOR_DAEMONS=1, kopf also runs one daemon per GoogleClient that only waits to be
stopped: the shape the design asks for (a kopf daemon per client), with no work in it.
"""

from __future__ import annotations

import os
from typing import Any

import kopf

GROUP, VERSION = "google-token-operator.dev", "v1"


@kopf.on.event(GROUP, VERSION, "googleclients")
async def google_client_seen(**_: Any) -> None:
    """Nothing: the floor is what kopf spends to see every GoogleClient."""


@kopf.on.event(GROUP, VERSION, "branches")
async def branch_seen(**_: Any) -> None:
    """Nothing: the floor is what kopf spends to see every Branch."""


if os.environ.get("BENCH_FLOOR_DAEMONS") == "1":

    @kopf.daemon(GROUP, VERSION, "googleclients")
    async def google_client_daemon(stopped: kopf.DaemonStopped, **_: Any) -> None:
        """Nothing but being there: what one kopf daemon per GoogleClient costs."""
        await stopped.wait()
