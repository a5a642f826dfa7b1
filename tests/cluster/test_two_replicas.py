"""Two operator processes with leader election: one acts, the other takes over when it dies."""

from __future__ import annotations

import datetime as dt
import signal
import time

import pytest

from devkit.servers import SandboxServer
from fixtures.operator import Cluster, OperatorFactory, authorized_client, wait_for
from google_token_operator.election import LeaseTimings
from google_token_operator.timeutil import parse_rfc3339

# Documented in docs/design/2026-11-26-own-lease-election.md: a standby takes over within the
# Lease duration plus two retries (it may see the last renewal one retry late), and a pass takes
# a moment more.
TAKEOVER_LIMIT = LeaseTimings().takeover_bound.total_seconds() + 3


def refreshed_by(log: str) -> int:
    return log.count("Access token refreshed")


@pytest.mark.slow
def test_only_one_replica_acts_and_the_other_takes_over(
    cluster: Cluster,
    sandbox: SandboxServer,
    start_operator: OperatorFactory,
) -> None:
    sandbox.state.token_lifetime = 60
    active = start_operator("--leader-election", log_name="active.log")
    wait_for(lambda: "Leading:" in active.log(), 30, what="the first replica to lead")
    standby = start_operator("--leader-election", log_name="standby.log")
    wait_for(lambda: "Waiting to lead" in standby.log(), 30, what="the standby to wait")
    authorized_client(cluster, sandbox, refreshBefore="1h")  # refresh 30 s before expiry
    # A wait for the state, not a bound: it took over 30 s once on a loaded machine.
    cluster.wait_condition("googleclients", "acme", "Ready", "True", timeout=60)

    tokens: dict[str, dt.datetime] = {}

    def observe(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            data = cluster.secret("acme-google-token") or {}
            expiry = parse_rfc3339(data["expiry"])
            assert expiry > dt.datetime.now(dt.UTC), "the consumer Secret held an expired token"
            tokens.setdefault(data["access_token"], expiry)
            time.sleep(0.5)

    observe(35)  # at least one refresh, by the active replica only
    assert refreshed_by(active.log()) >= 1
    assert refreshed_by(standby.log()) == 0

    killed_at = time.monotonic()
    assert active.process is not None
    active.process.send_signal(signal.SIGKILL)
    active.process.wait()
    wait_for(
        lambda: "Leading:" in standby.log(),
        TAKEOVER_LIMIT,
        what="the standby to take over",
    )
    takeover = time.monotonic() - killed_at
    print(f"standby resumed {takeover:.1f}s after the active replica was killed")
    observe(40)  # the standby refreshes from now on
    assert refreshed_by(standby.log()) >= 1

    # No token lost, none refreshed twice: every token Google issued from the first one read
    # on, the Secret then held (on a busy machine Ready may come after the first refresh).
    issued = sandbox.state.issued_access_tokens()
    first_read = min(tokens, key=lambda token: tokens[token])
    assert issued[issued.index(first_read) :] == sorted(tokens, key=lambda token: tokens[token])
    assert "Starting Kopf" not in standby.log().split("Leading:")[0]  # idle while waiting
