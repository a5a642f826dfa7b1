"""spec.secretTemplate on the real API server with the sandbox: a Branch's Secret carries the
templated key and the label, written in place (same object) at each refresh."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import yaml

from devkit.servers import SandboxServer
from fixtures.operator import (
    Cluster,
    OperatorFactory,
    authorized_client,
    branch_spec,
    wait_for,
)
from google_token_sandbox.demo_data import OWNER_LOCATION_IDS

# Short tokens: refreshed every few seconds, so two refreshes take seconds.
LIFETIME = 12
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guides" / "consuming-tokens.md"


def guide_template() -> dict[str, Any]:
    """The guide's example Branch's template, plus an attempt at the operator's own label."""
    text = GUIDE.read_text().split("tests/cluster/test_secret_templates.py", 1)[1]
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    template: dict[str, Any] = yaml.safe_load(block)["spec"]["secretTemplate"]
    template["metadata"]["labels"]["google-token-operator.dev/role"] = "private"
    return template


def raw_secret(cluster: Cluster, name: str) -> dict[str, Any]:
    secret = cluster.core.read_namespaced_secret(name, cluster.namespace).to_dict()
    secret["data"] = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    return secret


def test_a_branch_template_is_on_its_secret_and_follows_each_refresh_in_place(
    cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory
) -> None:
    started = time.monotonic()
    sandbox.state.token_lifetime = LIFETIME
    start_operator()
    refresh_token = authorized_client(cluster, sandbox)
    spec = {**branch_spec(OWNER_LOCATION_IDS[0]), "secretTemplate": guide_template()}
    cluster.create("branches", "downtown", spec)
    ready = cluster.wait_condition("branches", "downtown", "Ready", "True", "LocationVerified")
    # The template tried to set the operator's own role label: the operator's wins, and says so.
    assert "google-token-operator.dev/role" in ready["message"]

    first = raw_secret(cluster, "downtown-google-token")
    uid = first["metadata"]["uid"]
    labels = first["metadata"]["labels"]
    assert labels["reloader"] == "enabled"
    assert labels["google-token-operator.dev/role"] == "consumer"
    assert first["metadata"]["annotations"] == {"example.com/team": "reviews"}
    seen = {first["data"]["access_token"]}
    for _ in range(2):  # two refreshes: the same object, the templated key follows the token
        current = wait_for(
            lambda: (
                (secret := raw_secret(cluster, "downtown-google-token"))["data"]["access_token"]
                not in seen
                and secret
            ),
            timeout=3 * LIFETIME,
            what="a refreshed token in the Branch's Secret",
        )
        data = current["data"]
        seen.add(data["access_token"])
        assert current["metadata"]["uid"] == uid
        assert data["authorization"] == f"Bearer {data['access_token']}"
        assert data[".env"] == (
            f"GOOGLE_TOKEN={data['access_token']}\nGOOGLE_LOCATION={data['location_name']}\n"
        )
        assert current["metadata"]["labels"]["reloader"] == "enabled"
        # The client's own Secret (no template) follows too, with no annotation or extra key.
        plain = raw_secret(cluster, "acme-google-token")
        assert plain["data"]["access_token"] == data["access_token"]
        assert not plain["metadata"]["annotations"] and "authorization" not in plain["data"]
        assert refresh_token not in repr(current)

    # The template's label changes: the Secret follows, the dropped label goes.
    cluster.patch_spec(
        "branches",
        "downtown",
        {"secretTemplate": {"metadata": {"labels": {"reloader": None, "tier": "gold"}}}},
    )
    relabelled = wait_for(
        lambda: (
            (labels := raw_secret(cluster, "downtown-google-token")["metadata"]["labels"]).get(
                "tier"
            )
            == "gold"
            and labels
        ),
        what="the new template label on the Secret",
    )
    assert "reloader" not in relabelled
    assert raw_secret(cluster, "downtown-google-token")["metadata"]["uid"] == uid
    print(f"template test took {time.monotonic() - started:.1f} s")
