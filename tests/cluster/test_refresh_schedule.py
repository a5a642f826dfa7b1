"""Refresh timing against the real API server: ahead of expiry, once per refresh, restarts."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from devkit.servers import SandboxServer
from fixtures.operator import (
    Cluster,
    OperatorFactory,
    authorized_client,
    branch_spec,
    wait_for,
)
from google_token_operator import policy
from google_token_operator.timeutil import parse_rfc3339
from google_token_sandbox.demo_data import OWNER_LOCATION_IDS

LIFETIME = 60
OBSERVE_SECONDS = 300


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@pytest.mark.slow
def test_sixty_second_tokens_for_five_minutes(
    cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory
) -> None:
    sandbox.state.token_lifetime = LIFETIME
    start_operator()
    authorized_client(cluster, sandbox)
    cluster.create("branches", "downtown", branch_spec(OWNER_LOCATION_IDS[0]))
    cluster.wait_condition("branches", "downtown", "Ready", "True", timeout=20)
    sandbox.state.reset_counts()

    promised = policy.promised_remaining(dt.timedelta(seconds=LIFETIME))
    tokens: dict[str, dt.datetime] = {}
    least_left = dt.timedelta(days=1)
    deadline = time.monotonic() + OBSERVE_SECONDS
    while time.monotonic() < deadline:
        for secret in ("acme-google-token", "downtown-google-token"):
            data = cluster.secret(secret)
            assert data is not None
            expiry = parse_rfc3339(data["expiry"])
            left = expiry - now()
            least_left = min(least_left, left)
            assert left >= promised, f"{secret} held a token with only {left} left"
            tokens.setdefault(data["access_token"], expiry)
        time.sleep(0.5)

    refreshes = sandbox.state.counts["token.refresh_token"]
    print(f"refreshes={refreshes} distinct_tokens={len(tokens)} least_left={least_left}")
    # A 60 s token is refreshed ~20 s before expiry: 7 or 8 times in 300 s.
    assert 6 <= refreshes <= 9
    # Exactly one call per refresh: every call produced a token the Secrets then held.
    assert len(tokens) - 1 == refreshes
    assert cluster.condition("googleclients", "acme", "Ready")["reason"] == "TokenValid"


def test_restart_keeps_fresh_tokens_and_refreshes_expired_ones_at_once(
    cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory
) -> None:
    operator = start_operator()
    authorized_client(cluster, sandbox)
    cluster.wait_condition("googleclients", "acme", "Ready", "True", timeout=20)
    assert sandbox.state.counts["token.refresh_token"] == 1

    operator.stop()
    operator.start()
    time.sleep(8)  # long enough for kopf to start and every daemon to make its first pass
    assert "Access token refreshed" not in operator.log().split("Starting Kopf")[-1]
    assert sandbox.state.counts["token.refresh_token"] == 1

    # Now a token that expires while the operator is down.
    sandbox.state.token_lifetime = 6
    cluster.patch_spec("googleclients", "acme", {"refreshBefore": "1s"})
    operator.stop()
    cluster.put_secret(  # what the operator would hold after a refresh to a 6 s token
        "acme-google-oauth",
        {**(cluster.secret("acme-google-oauth") or {}), "expiry": _in(seconds=2)},
        labels={
            "app.kubernetes.io/managed-by": "google-token-operator",
            "google-token-operator.dev/client": "acme",
            "google-token-operator.dev/role": "private",
        },
        owner=cluster.get("googleclients", "acme"),
    )
    time.sleep(3)  # expired now
    started = time.monotonic()
    operator.start()
    wait_for(lambda: sandbox.state.counts["token.refresh_token"] == 2, 20, what="the expired token")
    elapsed = time.monotonic() - started
    print(f"expired token refreshed {elapsed:.1f}s after the operator started")
    assert elapsed < 15
    cluster.wait_condition("googleclients", "acme", "Ready", "True", "TokenValid")


def _in(seconds: int) -> str:
    moment = now() + dt.timedelta(seconds=seconds)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")
