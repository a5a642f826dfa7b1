"""The bare-kopf floor for `make bench`: kopf watching GoogleClients and Branches with handlers
that do nothing, so the benchmark can say what the operator costs beyond kopf itself.

    python -m kopf run --standalone --all-namespaces hack/bench_bare_kopf.py
"""

from __future__ import annotations

from typing import Any

import kopf

GROUP, VERSION = "google-token-operator.dev", "v1alpha1"


@kopf.on.event(GROUP, VERSION, "googleclients")
async def google_client_seen(**_: Any) -> None:
    """Nothing: the floor is what kopf spends to see every GoogleClient."""


@kopf.on.event(GROUP, VERSION, "branches")
async def branch_seen(**_: Any) -> None:
    """Nothing: the floor is what kopf spends to see every Branch."""
