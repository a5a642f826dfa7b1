"""Each failure of issue 3: the condition reason, the Event, and the calls made to Google."""

from __future__ import annotations

import time

import pytest

from devkit.servers import SandboxServer
from fixtures.operator import (
    OWNER,
    Cluster,
    OperatorFactory,
    authorized_client,
    branch_spec,
    wait_for,
)
from fixtures.sandbox import post_token
from google_token_sandbox.demo_data import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    OTHER_LOCATION_ID,
    OWNER_LOCATION_IDS,
)

# Short tokens and a refresh window of half their life: a refresh every ~10 s.
SHORT = {"refreshBefore": "1h"}
LIFETIME = 20


@pytest.fixture
def short_lived_client(
    cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory
) -> None:
    """The operator and a Ready client whose 20 s tokens are refreshed every ~10 s."""
    sandbox.state.token_lifetime = LIFETIME
    start_operator()
    authorized_client(cluster, sandbox, **SHORT)
    cluster.wait_condition("googleclients", "acme", "Ready", "True", "TokenValid")


def refreshes(sandbox: SandboxServer) -> int:
    return sandbox.state.counts["token.refresh_token"]


def steady(read: object, seconds: float) -> None:
    """Assert a counter does not move for a while (no retry storm)."""
    assert callable(read)
    before = read()
    time.sleep(seconds)
    assert read() == before


def test_revoked_grant_asks_for_consent_without_retry_storm(
    cluster: Cluster, sandbox: SandboxServer, short_lived_client: None
) -> None:
    first = cluster.secret("acme-google-token")
    assert first is not None
    sandbox.state.revoke_grants(DEMO_CLIENT_ID, OWNER)

    revoked = cluster.wait_condition(
        "googleclients", "acme", "Authorized", "False", "AuthorizationRevoked", timeout=30
    )
    assert "invalid_grant" in revoked["message"]
    cluster.wait_condition("googleclients", "acme", "Ready", "False", "AuthorizationRevoked")
    assert refreshes(sandbox) == 2  # the first token, then the one refused
    status = (cluster.get("googleclients", "acme") or {})["status"]
    assert status["authorization"]["url"].startswith(sandbox.url)
    cluster.wait_events("acme", "AuthorizationRevoked")
    # The consumer keeps the last token until it expires; no more calls to Google.
    assert (cluster.secret("acme-google-token") or {})["access_token"] == first["access_token"]
    steady(lambda: refreshes(sandbox), 4)


def test_rejected_client_waits_for_the_credentials_secret_to_change(
    cluster: Cluster, sandbox: SandboxServer, short_lived_client: None
) -> None:
    sandbox.state.break_client_secret(DEMO_CLIENT_ID)

    rejected = cluster.wait_condition(
        "googleclients", "acme", "Ready", "False", "ClientCredentialsInvalid", timeout=30
    )
    assert "acme-oauth" in rejected["message"]
    cluster.wait_events("acme", "ClientCredentialsInvalid")
    calls = refreshes(sandbox)
    assert calls == 2
    steady(lambda: refreshes(sandbox), 4)

    # The fix: the credentials Secret changes (here: relabelled after the rotation was undone
    # at Google). The operator retries at once.
    sandbox.state.restore_client_secret(DEMO_CLIENT_ID)
    cluster.put_secret(
        "acme-oauth",
        {"client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET},
        labels={"rotated": "yes"},
    )
    cluster.wait_condition("googleclients", "acme", "Ready", "True", "TokenValid", timeout=15)
    assert refreshes(sandbox) == calls + 1


def test_overloaded_google_backs_off_and_stays_ready(
    cluster: Cluster, sandbox: SandboxServer, short_lived_client: None
) -> None:
    sandbox.state.inject_faults("token", status=503, count=1, retry_after=2)
    sandbox.state.inject_faults("token", status=429, count=1)

    delayed = cluster.wait_condition(
        "googleclients", "acme", "Ready", "True", "RefreshDelayed", timeout=30
    )
    assert "503" in delayed["message"] or "429" in delayed["message"]
    status = (cluster.get("googleclients", "acme") or {})["status"]
    assert status["failedRefreshAttempts"] >= 1
    cluster.wait_condition("googleclients", "acme", "Ready", "True", "TokenValid", timeout=30)
    assert refreshes(sandbox) == 4  # first token, two refused, one success
    reasons = cluster.wait_events("acme", "RefreshDelayed", "TokenValid", "TokenValid")
    assert reasons.count("TokenValid") == 2  # first Ready, and the recovery
    status = (cluster.get("googleclients", "acme") or {})["status"]
    assert status["failedRefreshAttempts"] == 0


def test_missing_credentials_secret_heals_when_it_appears(
    cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory
) -> None:
    start_operator()
    cluster.create("googleclients", "acme", {"credentialsSecretRef": {"name": "acme-oauth"}})
    missing = cluster.wait_condition(
        "googleclients", "acme", "Ready", "False", "CredentialsSecretNotFound"
    )
    assert "acme-oauth" in missing["message"]
    cluster.wait_events("acme", "CredentialsSecretNotFound")
    assert sandbox.state.counts["token"] == 0

    started = time.monotonic()
    cluster.put_demo_credentials()
    cluster.wait_condition("googleclients", "acme", "Ready", "False", "ConsentRequired", timeout=10)
    assert time.monotonic() - started < 5
    assert sandbox.state.counts["token"] == 0


def test_branch_of_a_missing_client_becomes_ready_with_the_client(
    cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory
) -> None:
    start_operator()
    cluster.create("branches", "downtown", branch_spec(OWNER_LOCATION_IDS[0]))
    not_ready = cluster.wait_condition("branches", "downtown", "Ready", "False", "ClientNotReady")
    assert "acme" in not_ready["message"]
    cluster.wait_events("downtown", "ClientNotReady")

    authorized_client(cluster, sandbox)
    cluster.wait_condition("branches", "downtown", "Ready", "True", "LocationVerified", timeout=20)
    assert refreshes(sandbox) == 1


def test_inaccessible_locations_are_reported(
    cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory
) -> None:
    start_operator()
    authorized_client(cluster, sandbox)
    cluster.create("branches", "foreign", branch_spec(OTHER_LOCATION_ID))  # another user's: 403
    cluster.create("branches", "unknown", branch_spec("5555555555"))  # no such location: 404
    for name, status in (("foreign", "403"), ("unknown", "404")):
        refused = cluster.wait_condition(
            "branches", name, "Ready", "False", "LocationNotAccessible", timeout=20
        )
        assert status in refused["message"]
        cluster.wait_events(name, "LocationNotAccessible")
    assert sandbox.state.counts["locations.get"] == 2
    assert refreshes(sandbox) == 1
    steady(lambda: sandbox.state.counts["locations.get"], 3)


def test_consumer_secrets_edited_or_deleted_by_hand_are_restored(
    cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory
) -> None:
    start_operator()
    authorized_client(cluster, sandbox)
    cluster.create("branches", "downtown", branch_spec(OWNER_LOCATION_IDS[0]))
    cluster.wait_condition("branches", "downtown", "Ready", "True")
    original = cluster.secret("downtown-google-token")
    assert original is not None

    cluster.delete_secret("downtown-google-token")
    wait_for(lambda: cluster.secret("downtown-google-token") == original, 10, what="restore")

    cluster.put_secret(
        "acme-google-token",
        {"access_token": "edited by hand"},
        labels={
            "app.kubernetes.io/managed-by": "google-token-operator",
            "google-token-operator.dev/client": "acme",
            "google-token-operator.dev/role": "consumer",
        },
        owner=cluster.get("googleclients", "acme"),  # an edit keeps the owner
    )
    wait_for(
        lambda: (
            (cluster.secret("acme-google-token") or {}).get("access_token")
            == original["access_token"]
        ),
        10,
        what="the edited Secret restored",
    )
    assert refreshes(sandbox) == 1  # restored from the private Secret, not from Google


def test_deleting_removes_what_it_owns_and_revokes_on_request(
    cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory
) -> None:
    start_operator()
    refresh_token = authorized_client(cluster, sandbox, revokeOnDelete=True)
    cluster.create("branches", "downtown", branch_spec(OWNER_LOCATION_IDS[0]))
    cluster.wait_condition("branches", "downtown", "Ready", "True")
    secret = cluster.core.read_namespaced_secret("downtown-google-token", cluster.namespace)
    assert secret.metadata.owner_references[0].kind == "Branch"

    cluster.delete("branches", "downtown")
    wait_for(lambda: cluster.get("branches", "downtown") is None, 10, what="Branch gone")
    # A Branch carries no finalizer: its Secret goes a moment after it (the operator sees the
    # deletion; in a cluster with a controller-manager, garbage collection too).
    wait_for(lambda: cluster.secret("downtown-google-token") is None, 10, what="its Secret gone")

    cluster.delete("googleclients", "acme")
    wait_for(lambda: cluster.get("googleclients", "acme") is None, 10, what="client gone")
    assert cluster.secret("acme-google-token") is None
    assert cluster.secret("acme-google-oauth") is None
    assert sandbox.state.counts["revoke"] == 1
    # The grant is gone at Google: its refresh token no longer works.
    answer = post_token(sandbox, grant_type="refresh_token", refresh_token=refresh_token)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")


def test_branches_of_a_deleted_client_report_it(
    cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory
) -> None:
    start_operator()
    authorized_client(cluster, sandbox)
    cluster.create("branches", "downtown", branch_spec(OWNER_LOCATION_IDS[0]))
    cluster.wait_condition("branches", "downtown", "Ready", "True", timeout=20)
    cluster.delete("googleclients", "acme")
    cluster.wait_condition("branches", "downtown", "Ready", "False", "ClientNotReady", timeout=10)
    cluster.wait_events("downtown", "ClientNotReady")


def test_deleting_with_a_grant_already_revoked_at_google_finishes_at_once(
    cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory
) -> None:
    start_operator()
    authorized_client(cluster, sandbox, revokeOnDelete=True)
    cluster.wait_condition("googleclients", "acme", "Ready", "True", timeout=20)
    sandbox.state.revoke_grants(DEMO_CLIENT_ID, OWNER)  # the person removed access meanwhile

    started = time.monotonic()
    cluster.delete("googleclients", "acme")
    wait_for(lambda: cluster.get("googleclients", "acme") is None, 15, what="client gone")
    print(f"deleted {time.monotonic() - started:.1f} s after the request")
    assert sandbox.state.counts["revoke"] == 1  # Google said invalid_token: nothing to revoke
    assert cluster.secret("acme-google-oauth") is None
