"""Grants shared between GoogleClients, on the real API server with the operator and the sandbox
Google, which keeps one grant per (OAuth client, account) as Google does: a revoke of any token
ends all of them, and the 101st refresh token of a pair ends the oldest."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import requests

from devkit import ControlPlane
from devkit.servers import SandboxServer
from fixtures.operator import (
    OWNER,
    PRIVATE_LABELS,
    SCOPES,
    Cluster,
    OperatorFactory,
    free_port,
    wait_for,
)
from fixtures.sandbox import post_token
from google_token_sandbox.demo_data import DEMO_CLIENT_ID, OTHER_EMAIL

# Short tokens and a refresh window of half their life: a refresh every ~5 s.
LIFETIME = 10
SHORT = {"refreshBefore": "1h"}


def consented_client(
    cluster: Cluster, sandbox: SandboxServer, name: str, email: str = OWNER, **spec: Any
) -> str:
    """A GoogleClient on the demo OAuth client with a grant of `email` in its private Secret,
    as a consent leaves it (minted at the sandbox: a consent of its own); its refresh token."""
    refresh_token = sandbox.state.mint_grant(DEMO_CLIENT_ID, email, SCOPES)
    body = cluster.create(
        "googleclients", name, {"credentialsSecretRef": {"name": "acme-oauth"}, **spec}
    )
    cluster.put_secret(
        f"{name}-google-oauth",
        {"refresh_token": refresh_token, "client_id": DEMO_CLIENT_ID, "account_email": email,
         "scopes": " ".join(SCOPES)},
        labels={**PRIVATE_LABELS, "google-token-operator.dev/client": name},
        owner=body,
    )  # fmt: skip
    return refresh_token


def grant_of(sandbox: SandboxServer, email: str) -> dict[str, Any]:
    [grant] = [g for g in sandbox.state.grants(DEMO_CLIENT_ID) if g["email"] == email]
    return grant


def ready(cluster: Cluster, name: str) -> bool:
    return bool(cluster.condition("googleclients", name, "Ready").get("status") == "True")


def keeps_refreshing(cluster: Cluster, sandbox: SandboxServer, name: str, lifetimes: int) -> None:
    """`name` stays Ready and its grant is refreshed at least once per token lifetime."""
    calls = grant_of(sandbox, OWNER)["refresh_calls"]
    deadline = time.monotonic() + lifetimes * LIFETIME
    while time.monotonic() < deadline:
        assert ready(cluster, name), cluster.condition("googleclients", name, "Ready")
        time.sleep(1)
    assert grant_of(sandbox, OWNER)["live"]
    assert grant_of(sandbox, OWNER)["refresh_calls"] - calls >= lifetimes
    assert ready(cluster, name)


def test_a_shared_grant_outlives_a_deletion_and_a_revoke_of_its_siblings(
    control_plane: ControlPlane,
    cluster: Cluster,
    sandbox: SandboxServer,
    start_operator: OperatorFactory,
) -> None:
    started = time.monotonic()
    sandbox.state.token_lifetime = LIFETIME
    start_operator()
    cluster.put_demo_credentials()
    consented_client(cluster, sandbox, "acme", revokeOnDelete=True, **SHORT)
    consented_client(cluster, sandbox, "twin", **SHORT)
    consented_client(cluster, sandbox, "keeper", **SHORT)
    consented_client(cluster, sandbox, "other", OTHER_EMAIL, revokeOnDelete=True, **SHORT)
    for name in ("acme", "twin", "keeper", "other"):
        cluster.wait_condition("googleclients", name, "Ready", "True", "TokenValid", timeout=30)

    # revokeOnDelete on a grant two others keep: not revoked at Google, and the Event says why.
    cluster.delete("googleclients", "acme")
    wait_for(lambda: cluster.get("googleclients", "acme") is None, 30, what="acme deleted")
    cluster.wait_events("acme", "RevokeSkipped")
    [skipped] = [e for e in cluster.events("acme") if e["reason"] == "RevokeSkipped"]
    assert "GoogleClient 'keeper'" in skipped["message"] and "'twin'" in skipped["message"]
    assert cluster.secret("acme-google-oauth") is None

    # A revoke request on one of the two left: its refresh token goes, Google's grant stays.
    revoke = subprocess.run(
        [sys.executable, "-m", "google_token_operator", "revoke", "twin", "-n", cluster.namespace],
        env={**os.environ, "KUBECONFIG": str(control_plane.kubeconfig)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert revoke.returncode == 0, revoke.stdout + revoke.stderr
    assert "Did not revoke the grant at Google: GoogleClient 'keeper' keeps" in revoke.stdout
    cluster.wait_condition("googleclients", "twin", "Authorized", "False", "RevokedOnRequest")
    assert cluster.secret("twin-google-oauth") is None
    assert grant_of(sandbox, OWNER)["revoke_calls"] == 0

    keeps_refreshing(cluster, sandbox, "keeper", lifetimes=3)
    assert grant_of(sandbox, OWNER)["revoke_calls"] == 0

    # Another account's grant nobody else keeps: revoked, once. A tenant's Secret with the
    # operator's labels claiming that pair (owned by no GoogleClient) does not hold it back.
    cluster.put_secret(
        "forged-google-oauth",
        {"refresh_token": "1//forged", "client_id": DEMO_CLIENT_ID, "account_email": OTHER_EMAIL},
        labels={**PRIVATE_LABELS, "google-token-operator.dev/client": "forged"},
    )
    cluster.delete("googleclients", "other")
    wait_for(lambda: grant_of(sandbox, OTHER_EMAIL)["revoke_calls"] == 1, 30, what="the revoke")
    assert not grant_of(sandbox, OTHER_EMAIL)["live"]
    assert "RevokeSkipped" not in [e["reason"] for e in cluster.events("other")]
    assert ready(cluster, "keeper")
    print(f"\n[shared grants] took {time.monotonic() - started:.0f} s")


def grant_sharing_max(port: int) -> float | None:
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except requests.ConnectionError:
        return None
    for line in text.splitlines():
        if line.startswith("google_token_operator_grant_sharing_max "):
            return float(line.split()[1])
    return None


def limit_events(cluster: Cluster) -> set[str]:
    listing = cluster.core.list_namespaced_event(
        cluster.namespace, field_selector="reason=GrantLimitNear"
    )
    return {event.involved_object.name for event in listing.items}


def test_past_fifty_clients_on_one_pair_each_is_told_and_the_101st_token_ends_the_oldest(
    cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory
) -> None:
    started = time.monotonic()
    port = free_port()
    start_operator("--metrics-port", str(port))
    cluster.put_demo_credentials()
    names = [f"c{index:03d}" for index in range(51)]
    tokens = [consented_client(cluster, sandbox, name) for name in names[:50]]
    wait_for(lambda: grant_sharing_max(port) == 50, 60, what="50 GoogleClients on one pair")
    assert limit_events(cluster) == set()  # 50 is not past the mark

    consented_client(cluster, sandbox, names[50])
    wait_for(lambda: grant_sharing_max(port) == 51, 30, what="51 GoogleClients on one pair")
    told = wait_for(
        lambda: (found := limit_events(cluster)) == set(names) and found, 30, what="51 Events"
    )
    assert told == set(names)
    [event] = [e for e in cluster.events(names[0]) if e["reason"] == "GrantLimitNear"]
    assert event["type"] == "Warning" and "51 GoogleClients keep a grant" in event["message"]

    # 50 more consents of the pair elsewhere: the 101st refresh token ends the oldest one
    # (the GoogleClient's next refresh gets invalid_grant), and only that one.
    for _ in range(50):
        sandbox.state.mint_grant(DEMO_CLIENT_ID, OWNER, SCOPES)
    oldest = post_token(sandbox, grant_type="refresh_token", refresh_token=tokens[0])
    assert (oldest.status_code, oldest.json()["error"]) == (400, "invalid_grant")
    second = post_token(sandbox, grant_type="refresh_token", refresh_token=tokens[1])
    assert second.status_code == 200, second.text
    print(f"\n[grant limit] took {time.monotonic() - started:.0f} s")
