"""Google's grant semantics with the real operator, a real API server and the sandbox:
Workspace re-authentication (invalid_rapt) and time-limited access (refresh_token_expires_in).
The consent goes through the operator's consent API as the callback hands it over."""

from __future__ import annotations

import datetime as dt
import time

from test_cli import cli
from test_consent_api import Consent, requests_ok

from devkit import ControlPlane
from devkit.servers import SandboxServer
from fixtures.operator import (
    OWNER,
    Cluster,
    OperatorFactory,
    free_port,
    wait_for,
)
from google_token_operator.timeutil import parse_rfc3339
from google_token_sandbox.demo_data import DEMO_CLIENT_ID

# Short tokens and a refresh window of half their life: a refresh every ~10 s.
LIFETIME = 20
SHORT = {"refreshBefore": "1h"}


def grant_refreshes(sandbox: SandboxServer) -> int:
    [grant] = [g for g in sandbox.state.grants(DEMO_CLIENT_ID) if g["email"] == OWNER]
    calls: int = grant["refresh_calls"]
    return calls


def consented(cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory) -> Consent:
    """The operator, GoogleClient acme with short tokens, and an allowed consent."""
    sandbox.state.token_lifetime = LIFETIME
    port = free_port()
    start_operator("--consent-port", str(port))
    cluster.put_demo_credentials()
    cluster.create(
        "googleclients",
        "acme",
        {"credentialsSecretRef": {"name": "acme-oauth"}, "loginHint": OWNER, **SHORT},
    )
    wait_for(lambda: requests_ok(port), 20, what="the consent API")
    driver = Consent(cluster, sandbox, port)
    answer = driver.hand_over(**driver.google_redirect(driver.url()))
    assert answer["outcome"] == "authorized", answer
    return driver


def test_reauthentication_is_told_apart_with_advice_and_no_retry_storm(
    control_plane: ControlPlane,
    cluster: Cluster,
    sandbox: SandboxServer,
    start_operator: OperatorFactory,
) -> None:
    """invalid_rapt here; rapt_required takes the same path (tests/unit/test_grant_checks.py)."""
    consented(cluster, sandbox, start_operator)
    cluster.wait_condition("googleclients", "acme", "Ready", "True", "TokenValid")
    sandbox.state.require_reauth(DEMO_CLIENT_ID, OWNER, "invalid_rapt")
    before = grant_refreshes(sandbox)

    condition = cluster.wait_condition(
        "googleclients", "acme", "Authorized", "False", "ReauthenticationRequired", timeout=30
    )

    assert "cloud-platform" in condition["message"] and "trusted" in condition["message"]
    status = (cluster.get("googleclients", "acme") or {})["status"]
    assert status["authorization"]["url"].startswith(sandbox.url)
    cluster.wait_events("acme", "ReauthenticationRequired")
    refused = grant_refreshes(sandbox)
    assert refused == before + 1
    # Several refresh periods (each ~10 s, a back-off step is shorter): no more calls.
    time.sleep(12)
    assert grant_refreshes(sandbox) == refused
    assert (cluster.secret("acme-google-oauth") or {}).get("refresh_token")  # kept
    # The reason as the command line shows it: the table, and the one client in detail.
    for args in (("status",), ("status", "acme")):
        shown = cli(*args, "-n", cluster.namespace, kubeconfig=control_plane.kubeconfig)
        assert "ReauthenticationRequired" in shown.stdout, shown.stdout + shown.stderr


def test_a_day_long_grant_shows_its_end_in_status_and_the_ready_message(
    control_plane: ControlPlane,
    cluster: Cluster,
    sandbox: SandboxServer,
    start_operator: OperatorFactory,
) -> None:
    sandbox.state.time_limited_access = 86400
    started = dt.datetime.now(dt.UTC)

    consented(cluster, sandbox, start_operator)

    ready = cluster.wait_condition("googleclients", "acme", "Ready", "True", "TokenValid")
    status = (cluster.get("googleclients", "acme") or {})["status"]
    ends = parse_rfc3339(status["grantExpiresAt"])
    assert status["grantExpiresAt"].endswith("Z")
    assert abs(ends - (started + dt.timedelta(days=1))) < dt.timedelta(minutes=1)
    assert "time-limited access the person granted ends at" in ready["message"]
    shown = cli("status", "acme", "-n", cluster.namespace, kubeconfig=control_plane.kubeconfig)
    assert f"grant ends at:  {status['grantExpiresAt']}" in shown.stdout, shown.stderr


def test_a_short_grant_ends_as_authorization_revoked_with_no_call_to_google_after_it(
    cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory
) -> None:
    # 20 s instead of 120 s: the same rule (the end is the end), a sixth of the wait.
    sandbox.state.time_limited_access = 20
    consented(cluster, sandbox, start_operator)
    ends = parse_rfc3339(
        wait_for(
            lambda: ((cluster.get("googleclients", "acme") or {}).get("status") or {}).get(
                "grantExpiresAt"
            ),
            20,
            what="status.grantExpiresAt",
        )
    )

    revoked = cluster.wait_condition(
        "googleclients", "acme", "Authorized", "False", "AuthorizationRevoked", timeout=60
    )

    assert "time-limited access the person granted ended" in revoked["message"]
    assert dt.datetime.now(dt.UTC) >= ends
    calls = dict(sandbox.state.counts)
    after_end = grant_refreshes(sandbox)
    time.sleep(12)  # a refresh period and more
    assert grant_refreshes(sandbox) == after_end
    assert dict(sandbox.state.counts) == calls
