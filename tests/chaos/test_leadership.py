"""Fenced leadership under a frozen leader and under clocks that disagree.

Each replica runs under a ServiceAccount of its own, so the API server's audit log says who
wrote what and when: a frozen leader that wakes up after the takeover must write nothing.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest
from kubernetes import client

from fixtures.chaos import FAST_LEADER, TAKEOVER_BOUND, Stage
from fixtures.operator import OperatorProcess, wait_for
from google_token_operator.timeutil import parse_rfc3339

WRITES = {"create", "update", "patch", "delete"}
STARTUP = 4.0


def replica_kubeconfig(stage: Stage, name: str) -> Path:
    """A kubeconfig of ServiceAccount `name` (bound to cluster-admin: these runs are about
    who writes when, not about RBAC, which tests/cluster/test_manifests.py covers)."""
    core = stage.cluster.core
    core.create_namespaced_service_account(
        stage.namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
    )
    client.RbacAuthorizationV1Api(core.api_client).create_cluster_role_binding(
        client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(name=f"{stage.namespace}-{name}"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="cluster-admin"
            ),
            subjects=[
                client.RbacV1Subject(kind="ServiceAccount", name=name, namespace=stage.namespace)
            ],
        )
    )
    token = stage.plane.mint_service_account_token(stage.namespace, name)
    return stage.plane.write_kubeconfig(stage.output / f"{name}.kubeconfig", token, name)


def leads(stage: Stage, replica: OperatorProcess) -> bool:
    """The replica's identity (as it says in its log) holds the Lease."""
    said = re.search(r"Waiting to lead: Lease \S+ as (\S+)", replica.log())
    return said is not None and stage.lease_holder() == said.group(1)


def writes_by(stage: Stage, service_account: str, after: dt.datetime) -> list[str]:
    user = f"system:serviceaccount:{stage.namespace}:{service_account}"
    return [
        f"{event['verb']} {event['objectRef'].get('resource')}/{event['objectRef'].get('name')}"
        for event in stage.plane.audit_events()
        if event.get("stage") == "ResponseComplete"
        and event["user"]["username"] == user
        and event["verb"] in WRITES
        and parse_rfc3339(event["requestReceivedTimestamp"]) > after
    ]


def test_a_frozen_leader_writes_nothing_after_the_takeover(stage: Stage) -> None:
    stage.sandbox.state.token_lifetime = 20  # a write every ~10 s while leading
    leader = stage.operator(
        "replica-a", "--leader-election", kubeconfig=replica_kubeconfig(stage, "replica-a"),
        **FAST_LEADER,
    ).start()  # fmt: skip
    wait_for(lambda: leads(stage, leader), 30, what="replica-a to lead")
    standby = stage.operator(
        "replica-b", "--leader-election", kubeconfig=replica_kubeconfig(stage, "replica-b"),
        **FAST_LEADER,
    ).start()  # fmt: skip
    stage.authorized("acme", branches=2, refreshBefore="1h")
    stage.cluster.wait_condition("googleclients", "acme", "Ready", "True", timeout=30)
    assert writes_by(stage, "replica-a", dt.datetime(2000, 1, 1, tzinfo=dt.UTC))

    assert leader.process is not None
    frozen_at = time.monotonic()
    os.kill(leader.process.pid, signal.SIGSTOP)
    wait_for(lambda: leads(stage, standby), TAKEOVER_BOUND + 5, what="replica-b to take over")
    took_over = dt.datetime.now(dt.UTC)
    takeover = time.monotonic() - frozen_at
    time.sleep(5)
    os.kill(leader.process.pid, signal.SIGCONT)
    wait_for(lambda: leader.process is not None and leader.process.poll() is not None, 30,
             what="the old leader to stop")  # fmt: skip
    time.sleep(2)  # anything it still sent has reached the audit log by now
    late = writes_by(stage, "replica-a", took_over)
    successor = writes_by(stage, "replica-b", took_over)
    print(
        f"freeze run: replica-b led {takeover:.1f} s after replica-a froze; replica-a, woken "
        f"after the takeover, wrote {len(late)} times after it, exited with "
        f"{leader.process.returncode}; replica-b wrote {len(successor)} times meanwhile"
    )
    assert late == []
    assert leader.process.returncode == 1
    assert "Could not renew the Lease in time" in leader.log()
    stage.cluster.wait_condition("googleclients", "acme", "Ready", "True", "TokenValid", 30)


@pytest.mark.parametrize("skew", ["+10m", "-10m"])
def test_a_standby_with_a_skewed_clock_neither_steals_nor_fails_over_late(
    stage: Stage, skew: str
) -> None:
    faketime = shutil.which("faketime")
    assert faketime, "install faketime (make chaos-tools): the skew is injected with it"
    leader = stage.operator("leader", "--leader-election", **FAST_LEADER).start()
    wait_for(lambda: leads(stage, leader), 30, what="the leader to lead")
    standby = stage.operator("skewed", "--leader-election", DONT_FAKE_MONOTONIC="1", **FAST_LEADER)
    # The standby's wall clock is off by `skew`; its monotonic clock is left alone.
    standby.command = (faketime, "-f", skew, *standby.command)
    standby.start()
    wait_for(lambda: "Waiting to lead" in standby.log(), 30, what="the skewed standby to wait")
    holder = stage.lease_holder()
    deadline = time.monotonic() + 5 * TAKEOVER_BOUND
    while time.monotonic() < deadline:  # a live Lease: it must not be taken
        assert stage.lease_holder() == holder, f"the standby with a {skew} clock stole the Lease"
        time.sleep(0.2)

    assert leader.process is not None
    killed_at = time.monotonic()
    leader.process.send_signal(signal.SIGKILL)
    wait_for(lambda: leads(stage, standby), TAKEOVER_BOUND + 5, what="the skewed standby")
    failover = time.monotonic() - killed_at
    print(f"clock skew {skew}: no steal in {5 * TAKEOVER_BOUND:.0f} s; failover {failover:.1f} s "
          f"after the leader died (bound {TAKEOVER_BOUND:.1f} s)")  # fmt: skip
    assert failover <= TAKEOVER_BOUND + 1
