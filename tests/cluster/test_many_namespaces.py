"""The namespaced mode at scale on the real API server: 20 watched namespaces (4 watches each,
plus kopf's) and --leader-election, a GoogleClient with 2 Branches in each, 60-second tokens
for five minutes (5 refresh rounds; affordable since make test runs tests side by side).
Every object Ready, no expired token ever read from a consumer Secret, the Lease never lost;
the p99 latency of the operator's writes is printed from the API server's audit log. (Before
separate pools, 8 namespaces lost the Lease.)
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from devkit import ControlPlane
from devkit.servers import SandboxServer
from fixtures.operator import Cluster, OperatorFactory, authorized_client, branch_spec, wait_for
from google_token_operator.runner import LEASE_NAME
from google_token_operator.timeutil import parse_rfc3339
from google_token_sandbox.demo_data import OWNER_LOCATION_IDS

NAMESPACES = 20
LIFETIME = 60
OBSERVE_SECONDS = 300
BRANCHES = ("downtown", "airport")
CONSUMER_SECRETS = ("acme-google-token", *(f"{b}-google-token" for b in BRANCHES))


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@pytest.fixture
def watched(kube_api: client.ApiClient, namespace: str) -> Iterator[list[str]]:
    """The test's namespace and 19 more."""
    core = client.CoreV1Api(kube_api)
    more = [f"{namespace[:55]}-{i}" for i in range(1, NAMESPACES)]
    for name in more:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield [namespace, *more]
    finally:
        for name in more:
            core.delete_namespace(name)


def lease_holder(kube_api: client.ApiClient, namespace: str) -> str:
    lease = client.CoordinationV1Api(kube_api).read_namespaced_lease(LEASE_NAME, namespace)
    return str(lease.spec.holder_identity or "")


@pytest.mark.slow
def test_twenty_namespaces_with_leader_election_keep_every_token_fresh(
    control_plane: ControlPlane,
    kube_api: client.ApiClient,
    watched: list[str],
    sandbox: SandboxServer,
    start_operator: OperatorFactory,
) -> None:
    sandbox.state.token_lifetime = LIFETIME
    started = now()
    operator = start_operator(*(f"--namespace={ns}" for ns in watched[1:]), "--leader-election")
    clusters = [Cluster(kube_api, ns) for ns in watched]
    for cluster in clusters:
        authorized_client(cluster, sandbox)
        for branch, location in zip(BRANCHES, OWNER_LOCATION_IDS, strict=False):
            cluster.create("branches", branch, branch_spec(location))
    for cluster in clusters:
        cluster.wait_condition("googleclients", "acme", "Ready", "True", timeout=120)
        for branch in BRANCHES:
            cluster.wait_condition("branches", branch, "Ready", "True", timeout=60)
    ready_after = now() - started
    holder = wait_for(lambda: lease_holder(kube_api, watched[0]), 10, what="the Lease holder")
    sandbox.state.reset_counts()

    least_left = dt.timedelta(days=1)
    deadline = time.monotonic() + OBSERVE_SECONDS
    while time.monotonic() < deadline:
        for cluster in clusters:
            for secret in CONSUMER_SECRETS:
                data = cluster.secret(secret)
                assert data is not None, f"{cluster.namespace}/{secret} is gone"
                left = parse_rfc3339(data["expiry"]) - now()
                assert left > dt.timedelta(0), f"{cluster.namespace}/{secret} held an expired token"
                least_left = min(least_left, left)
        time.sleep(1)

    assert operator.running
    assert lease_holder(kube_api, watched[0]) == holder
    log = operator.log()
    assert "Renewing the Lease failed" not in log
    for cluster in clusters:
        for plural, name in [("googleclients", "acme"), *(("branches", b) for b in BRANCHES)]:
            assert cluster.condition(plural, name, "Ready")["status"] == "True", (
                f"{cluster.namespace}/{name} not Ready"
            )
    refreshes = sandbox.state.counts["token.refresh_token"]
    # Each client refreshes a 60 s token ~20 s before expiry: about every 40 s.
    assert refreshes >= NAMESPACES * (OBSERVE_SECONDS // LIFETIME)
    latencies = control_plane.write_latencies("google-token-operator/", set(watched), started)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(
        f"{NAMESPACES} namespaces: all Ready after {ready_after.total_seconds():.1f}s; "
        f"{refreshes} refreshes in {OBSERVE_SECONDS}s; least token life left {least_left}; "
        f"{len(latencies)} writes, p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms (API server audit)"
    )
