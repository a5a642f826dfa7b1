"""Webhook notices against a real API server, the sandbox Google and a real receiver: what a
person is told when a grant dies and comes back, delivery that survives failures and restarts,
and URLs the operator refuses to call."""

from __future__ import annotations

import datetime as dt
import itertools
import signal
import time

import pytest
from test_consent_api import Consent

from devkit import ControlPlane
from devkit.servers import SandboxServer
from fixtures.operator import (
    OWNER,
    Cluster,
    OperatorFactory,
    authorized_client,
    free_port,
    wait_for,
)
from fixtures.receiver import Receiver
from google_token_operator.timeutil import parse_rfc3339
from google_token_sandbox.demo_data import DEMO_CLIENT_ID

# The receiver lives on loopback: the tests allow it, as an installer lists its networks.
LOOPBACK = {"NOTIFY_ALLOW_HTTP": "true", "NOTIFY_ALLOWED_NETWORKS": "127.0.0.0/8"}


def webhook(cluster: Cluster, name: str, url: str, fmt: str = "") -> dict[str, object]:
    """A webhook Secret holding `url`; the spec.notify that names it."""
    cluster.put_secret(name, {"url": url})
    return {"webhookSecretRef": {"name": name}, **({"format": fmt} if fmt else {})}


def notices(receiver: Receiver, path: str) -> list[dict[str, object]]:
    return [item.body for item in receiver.accepted(path)]


def test_lost_and_restored_notices_with_consent_url_or_command_and_no_secret(
    cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory, receiver: Receiver
) -> None:
    sandbox.state.token_lifetime = 8
    consent_port = free_port()
    operator = start_operator("--consent-port", str(consent_port), **LOOPBACK)
    pinned = webhook(cluster, "acme-hook", receiver.url("acme/s3cr3t-path"))
    authorized_client(cluster, sandbox, "acme", allowedAccounts=[OWNER], notify=pinned)
    open_ = webhook(cluster, "second-hook", receiver.url("second"), fmt="slack")
    authorized_client(cluster, sandbox, "second", notify=open_)
    authorized_client(cluster, sandbox, "third", notify=webhook(cluster, "h3", receiver.url("3")))
    for name in ("acme", "second", "third"):
        cluster.wait_condition("googleclients", name, "Ready", "True", timeout=30)
    cluster.wait_condition("googleclients", "acme", "Notified", "True", timeout=10)

    sandbox.state.revoke_grants(DEMO_CLIENT_ID)
    lost = wait_for(lambda: notices(receiver, "acme/s3cr3t-path") or None, 30, what="a notice")
    assert len(lost) == 1, lost
    notice = lost[0]
    assert notice["type"] == "AuthorizationLost" and notice["reason"] == "AuthorizationRevoked"
    assert (notice["namespace"], notice["name"], notice["account"]) == (
        cluster.namespace,
        "acme",
        OWNER,
    )
    status = cluster.get("googleclients", "acme")["status"]
    assert notice["consentURL"] == status["authorization"]["url"] and "command" not in notice
    slack = wait_for(lambda: notices(receiver, "second") or None, 30, what="a Slack notice")
    text = slack[0]["text"]
    assert "Google authorization lost" in text and f"`{cluster.namespace}/second`" in text
    assert f"google-token-operator authorize second -n {cluster.namespace}" in text

    [unpinned] = wait_for(lambda: notices(receiver, "3") or None, 30, what="a JSON notice")
    assert unpinned["command"] == f"google-token-operator authorize third -n {cluster.namespace}"
    assert "consentURL" not in unpinned and unpinned["type"] == "AuthorizationLost"

    # A new consent restores the pinned client: one AuthorizationRestored, a new id.
    driver = Consent(cluster, sandbox, consent_port)
    assert driver.hand_over(**driver.google_redirect(driver.url()))["outcome"] == "authorized"
    both = wait_for(
        lambda: notices(receiver, "acme/s3cr3t-path")[1:] and notices(receiver, "acme/s3cr3t-path"),
        30,
        what="AuthorizationRestored",
    )
    assert [item["type"] for item in both] == ["AuthorizationLost", "AuthorizationRestored"]
    assert both[0]["id"] != both[1]["id"]
    assert "consentURL" not in both[1] and "command" in both[1]
    delivered = cluster.get("googleclients", "acme")["status"]["notices"]["delivered"]
    assert delivered == [both[0]["id"], both[1]["id"]]  # the ids the receiver got: stable
    time.sleep(3)  # a few more passes (8 s tokens): nothing is sent twice
    assert len(notices(receiver, "acme/s3cr3t-path")) == 2

    everything = receiver.everything()
    for value in sandbox.state.issued_secrets():
        assert value[:24] not in everything, f"a {value.split('-')[0]} value reached a receiver"
    assert "s3cr3t-path" not in cluster.all_events_text() + operator.log()
    assert "s3cr3t-path" not in str(cluster.get("googleclients", "acme"))


def test_failed_deliveries_back_off_and_survive_restarts_without_repeats(
    cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory, receiver: Receiver
) -> None:
    sandbox.state.token_lifetime = 8
    settings = {**LOOPBACK, "NOTIFY_RETRY_BASE": "1s"}
    operator = start_operator(**settings)
    authorized_client(cluster, sandbox, "acme", notify=webhook(cluster, "hook", receiver.url("h")))
    cluster.wait_condition("googleclients", "acme", "Ready", "True", timeout=30)
    receiver.script.extend([500, 500, 500])
    sandbox.state.revoke_grants(DEMO_CLIENT_ID)
    wait_for(lambda: len(receiver.on("h")) >= 2 or None, 40, what="two attempts")
    # A restart between a failed attempt and the next: the status says what is pending.
    operator.stop()
    restarted = time.monotonic()
    operator.start()
    wait_for(lambda: receiver.accepted("h") or None, 60, what="the accepted delivery")
    attempts = receiver.on("h")
    assert [item.status for item in attempts] == [500, 500, 500, 200]
    assert len({item.body["id"] for item in attempts}) == 1
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.9 and gaps[1] >= 1.9 and gaps[2] >= 3.8, gaps  # 1, 2, 4 s at least
    assert attempts[1].at < restarted < attempts[-1].at
    wait_for(
        lambda: (cluster.get("googleclients", "acme")["status"]["notices"]["delivered"]) or None,
        20,
        what="the delivery recorded",
    )
    cluster.wait_events("acme", "NoticeDeliveryFailed", "NoticeDelivered", timeout=20)
    # After the 2xx is recorded, a restart sends nothing again.
    operator.stop()
    operator.start()
    cluster.wait_condition("googleclients", "acme", "Notified", "True", timeout=30)
    time.sleep(3)
    assert len(receiver.on("h")) == 4


def test_refused_urls_make_no_request_and_say_why(
    cluster: Cluster,
    sandbox: SandboxServer,
    start_operator: OperatorFactory,
    receiver: Receiver,
    control_plane: ControlPlane,
) -> None:
    sandbox.state.token_lifetime = 8
    operator = start_operator(NOTIFY_ALLOW_HTTP="true")
    hooks = {
        "loopback": receiver.url("loopback"),
        "metadata": "http://169.254.169.254/latest/meta-data/",
        "apiserver": f"{control_plane.server}/api/v1/namespaces",
    }
    for name, url in hooks.items():
        authorized_client(cluster, sandbox, name, notify=webhook(cluster, f"{name}-hook", url))
    expected = {"loopback": "loopback", "metadata": "link-local", "apiserver": "API server"}
    for name, words in expected.items():
        found = cluster.wait_condition("googleclients", name, "Notified", "False", timeout=30)
        assert found["reason"] == "WebhookURLRefused" and words in found["message"], found
        assert "/latest/meta-data" not in found["message"] and "/api/v1" not in found["message"]
    sandbox.state.revoke_grants(DEMO_CLIENT_ID)
    for name in hooks:
        cluster.wait_condition("googleclients", name, "Authorized", "False", timeout=30)
    assert receiver.got == []

    # Loopback allowed (as the installer may): the API server stays refused, by name.
    operator.stop()
    start_operator(**LOOPBACK, log_name="operator-2.log")
    wait_for(lambda: receiver.accepted("loopback") or None, 30, what="the kept notice")
    refused = cluster.wait_condition("googleclients", "apiserver", "Notified", "False", timeout=30)
    assert "Kubernetes API server" in refused["message"], refused
    assert [item.path for item in receiver.got] == ["/loopback"]


@pytest.mark.slow
def test_refresh_failing_after_the_set_time_then_recovered(
    cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory, receiver: Receiver
) -> None:
    sandbox.state.token_lifetime = 8
    start_operator(**LOOPBACK)
    notify = {**webhook(cluster, "hook", receiver.url("f")), "after": "1m"}
    authorized_client(cluster, sandbox, "acme", notify=notify)
    cluster.wait_condition("googleclients", "acme", "Ready", "True", timeout=30)
    # Google answers 503 (asking for a retry in 5 s) to every refresh from now on.
    sandbox.state.inject_token_faults(10_000, 503, retry_after=5)
    wait_for(
        lambda: cluster.get("googleclients", "acme")["status"].get("failedRefreshAttempts"),
        30,
        what="a failed refresh",
    )
    first_failure = time.monotonic()
    failing = wait_for(lambda: receiver.accepted("f") or None, 100, what="RefreshFailing")
    waited = time.monotonic() - first_failure
    assert [item.body["type"] for item in failing] == ["RefreshFailing"]
    print(f"RefreshFailing {waited:.1f}s after the first failed refresh")
    assert 50 <= waited <= 80, waited  # about a minute after the first failure
    sandbox.state.clear_faults()
    cleared = time.monotonic()
    # The next try comes when the back-off says (status.nextRefreshTime), then the notice.
    next_try = cluster.get("googleclients", "acme")["status"]["nextRefreshTime"]
    until_next_try = (parse_rfc3339(next_try) - dt.datetime.now(dt.UTC)).total_seconds()
    both = wait_for(
        lambda: receiver.accepted("f")[1:] and receiver.accepted("f"),
        max(until_next_try, 0) + 30,
        what="RefreshRecovered",
    )
    assert [item.body["type"] for item in both] == ["RefreshFailing", "RefreshRecovered"]
    assert both[0].body["id"] != both[1].body["id"]
    assert both[1].body["reason"] == "TokenValid"
    print(f"RefreshRecovered {both[1].at - cleared:.1f}s after Google answered again")
    time.sleep(2)
    assert len(receiver.on("f")) == 2


def test_a_leader_failover_during_a_transition_delivers_exactly_once(
    cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory, receiver: Receiver
) -> None:
    sandbox.state.token_lifetime = 8
    settings = {
        **LOOPBACK,
        "NOTIFY_RETRY_BASE": "3s",
        "LEADER_LEASE_DURATION": "4s",
        "LEADER_RENEW_DEADLINE": "3s",
        "LEADER_RETRY_PERIOD": "1s",
    }
    active = start_operator("--leader-election", log_name="active.log", **settings)
    wait_for(lambda: "Leading:" in active.log(), 30, what="the first replica to lead")
    standby = start_operator("--leader-election", log_name="standby.log", **settings)
    wait_for(lambda: "Waiting to lead" in standby.log(), 30, what="the standby to wait")
    authorized_client(cluster, sandbox, "acme", notify=webhook(cluster, "hook", receiver.url("l")))
    cluster.wait_condition("googleclients", "acme", "Notified", "True", timeout=60)
    receiver.script.append(500)
    sandbox.state.revoke_grants(DEMO_CLIENT_ID)
    wait_for(lambda: receiver.on("l") or None, 30, what="the first attempt")
    # The leader dies after a failed attempt, with the transition and its notice pending.
    assert active.process is not None
    active.process.send_signal(signal.SIGKILL)
    active.process.wait()
    wait_for(lambda: receiver.accepted("l") or None, 60, what="the standby's delivery")
    assert "Leading:" in standby.log()
    time.sleep(3)
    attempts = receiver.on("l")
    assert [item.status for item in attempts] == [500, 200]  # exactly one accepted
    assert {item.body["type"] for item in attempts} == {"AuthorizationLost"}
    delivered = cluster.get("googleclients", "acme")["status"]["notices"]["delivered"]
    assert delivered == [attempts[1].body["id"]]
