"""Happy path against the real API server and the sandbox: one client, three Branches."""

from __future__ import annotations

import json
import time

from devkit.servers import SandboxServer
from fixtures.operator import (
    Cluster,
    OperatorFactory,
    authorized_client,
    branch_spec,
    reviews,
)
from fixtures.sandbox import OWNER
from google_token_sandbox.demo_data import OWNER_ACCOUNT_ID, OWNER_LOCATION_IDS

CLIENT_KEYS = {"access_token", "expiry", "token_type", "scopes", "token.json"}
BRANCH_KEYS = CLIENT_KEYS | {"account_id", "location_id", "location_name"}


def test_client_and_three_branches_become_ready(
    cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory
) -> None:
    start_operator()
    refresh_token = authorized_client(cluster, sandbox)
    names = [f"branch-{n}" for n in range(3)]
    for name, location in zip(names, OWNER_LOCATION_IDS, strict=True):
        cluster.create("branches", name, branch_spec(location))

    ready = cluster.wait_condition("googleclients", "acme", "Ready", "True", "TokenValid")
    assert "valid until" in ready["message"]
    cluster.wait_condition("googleclients", "acme", "Authorized", "True", "Authorized")
    for name in names:
        cluster.wait_condition("branches", name, "Ready", "True", "LocationVerified")

    client = cluster.get("googleclients", "acme")
    assert client is not None
    status = client["status"]
    assert status["account"]["email"] == OWNER
    assert status["expiresAt"] and status["nextRefreshTime"] and status["lastRefreshTime"]
    assert status["failedRefreshAttempts"] == 0

    client_secret = cluster.secret("acme-google-token")
    assert client_secret is not None
    assert set(client_secret) == CLIENT_KEYS
    assert client_secret["token_type"] == "Bearer"
    assert client_secret["expiry"].endswith("Z")
    for name, location in zip(names, OWNER_LOCATION_IDS, strict=True):
        data = cluster.secret(f"{name}-google-token")
        assert data is not None
        assert set(data) == BRANCH_KEYS
        assert refresh_token not in json.dumps(data)
        assert data["location_name"] == f"accounts/{OWNER_ACCOUNT_ID}/locations/{location}"
        assert data["access_token"] == client_secret["access_token"]
        assert json.loads(data["token.json"])["location_id"] == location
        response = reviews(sandbox, data)
        assert response.status_code == 200, response.text
        assert response.json()["reviews"]
        branch = cluster.get("branches", name)
        assert branch is not None
        assert branch["status"]["location"]["title"]

    # One refresh for the client, however many Branches share it.
    counts = sandbox.state.counts
    assert counts["token.refresh_token"] == 1
    assert counts["locations.get"] == 3
    cluster.wait_events("acme", "TokenValid")
    # A quiet operator: no further token calls while the token is fresh.
    time.sleep(1)
    assert sandbox.state.counts["token.refresh_token"] == 1
