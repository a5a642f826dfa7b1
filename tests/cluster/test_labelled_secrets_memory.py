"""Only owned data in memory, on the real API server: a tenant's Secrets carrying the
operator's labels (a label anyone can set) must not grow the operator's memory, neither while
it runs nor when a restart lists them all."""

from __future__ import annotations

import base64
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubernetes import client

from devkit.servers import SandboxServer
from fixtures.operator import (
    PRIVATE_LABELS,
    Cluster,
    OperatorFactory,
    OperatorProcess,
    authorized_client,
    wait_for,
)

FORGED = 300
FORGED_BYTES = 1_000_000  # of data each, near the 1 MiB a Secret may hold
FORGED_LABEL = "google-token-operator.dev/client=tenant-ballast"
MAX_GROWTH_MB = 20.0
LIFETIME = 10
# A restart first lists the 300 MiB, 10 Secrets a page, from an API server that make test
# shares with other tests running in parallel.
RESTART_ALLOWANCE = 60


def rss_mb(operator: OperatorProcess, field: str = "VmRSS") -> float:
    assert operator.process is not None
    status = Path(f"/proc/{operator.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith(f"{field}:"))
    return int(line.split()[1]) / 1024


def next_token(cluster: Cluster, allowance: float = 0) -> None:
    """Wait until the consumer Secret holds a new access token (the operator is alive and
    refreshing)."""
    before = (cluster.secret("acme-google-token") or {}).get("access_token")

    def new_token() -> bool:
        return (cluster.secret("acme-google-token") or {}).get("access_token") not in (
            None,
            before,
        )

    wait_for(new_token, 3 * LIFETIME + allowance, what="a new access token")


def put_forged(cluster: Cluster) -> None:
    """FORGED Secrets of ~1 MiB with the managed-by and private-role labels, no owner."""
    data = {"refresh_token": base64.b64encode(os.urandom(FORGED_BYTES)).decode()}
    labels = {**PRIVATE_LABELS, "google-token-operator.dev/client": "tenant-ballast"}

    def put(number: int) -> None:
        meta = client.V1ObjectMeta(name=f"ballast-{number}-google-oauth", labels=labels)
        cluster.core.create_namespaced_secret(
            cluster.namespace, client.V1Secret(metadata=meta, data=data)
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(FORGED)))


def test_labelled_secrets_of_a_tenant_do_not_grow_the_operators_memory(
    cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory
) -> None:
    sandbox.state.token_lifetime = LIFETIME
    operator = start_operator()
    authorized_client(cluster, sandbox)
    next_token(cluster)
    first = rss_mb(operator)
    try:
        started = time.monotonic()
        put_forged(cluster)
        created_s = time.monotonic() - started
        next_token(cluster)
        running = rss_mb(operator)

        operator.stop()
        started = time.monotonic()
        operator.start()
        next_token(cluster)
        restart_s = time.monotonic() - started
        restarted, peak = rss_mb(operator), rss_mb(operator, "VmHWM")
    finally:
        started = time.monotonic()
        cluster.core.delete_collection_namespaced_secret(
            cluster.namespace, label_selector=FORGED_LABEL
        )
        deleted_s = time.monotonic() - started
    print(
        f"{FORGED} Secrets of {FORGED_BYTES} bytes: created in {created_s:.1f}s, deleted in "
        f"{deleted_s:.1f}s; operator RSS {first:.1f} MB before, {running:.1f} MB running "
        f"among them, {restarted:.1f} MB after a restart among them (peak {peak:.1f} MB; "
        f"restart to a refresh {restart_s:.1f}s)"
    )
    assert running - first <= MAX_GROWTH_MB
    assert restarted - first <= MAX_GROWTH_MB
    # Their events did not stop the watch (aiohttp's line limit once did, silently).
    assert "Watching managed Secrets failed" not in operator.log()
    assert "LineTooLong" not in operator.log()
