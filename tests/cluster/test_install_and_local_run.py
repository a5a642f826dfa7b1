"""Tried as a new user would: `pip install .` into an empty venv runs the operator, and
`run` against a cluster where only crds/ was applied says what is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kubernetes import client

from devkit.servers import SandboxServer
from fixtures.operator import REPO, Cluster, OperatorFactory, authorized_client, wait_for


def test_pip_install_into_an_empty_venv_runs_the_operator(
    tmp_path: Path, cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", str(REPO)], check=True, timeout=900
    )
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.lower()
    # Without the test extra: no test tools, no sandbox, no Google client libraries.
    for absent in ("pytest", "google-token-sandbox", "playwright", "google-auth-oauthlib"):
        assert absent not in installed

    start_operator(command=(str(venv / "bin" / "google-token-operator"),))
    authorized_client(cluster, sandbox)
    cluster.wait_condition("googleclients", "acme", "Ready", "True", "TokenValid", timeout=60)
    assert (cluster.secret("acme-google-token") or {}).get("access_token")


def test_run_with_only_the_crds_names_the_missing_namespace_and_heals(
    cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory
) -> None:
    missing = f"{cluster.namespace}-gto"
    start_operator(OPERATOR_NAMESPACE=missing)
    cluster.put_demo_credentials()
    cluster.create("googleclients", "acme", {"credentialsSecretRef": {"name": "acme-oauth"}})

    ready = cluster.wait_condition(
        "googleclients", "acme", "Ready", "False", "OperatorNamespaceMissing"
    )
    assert repr(missing) in ready["message"]
    assert f"kubectl create namespace {missing}" in ready["message"]
    cluster.wait_events("acme", "OperatorNamespaceMissing")

    # The fix the message names: the consent URL appears by itself.
    cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=missing)))
    try:
        status = wait_for(
            lambda: ((cluster.get("googleclients", "acme") or {}).get("status") or {}).get(
                "authorization"
            ),
            timeout=40,
            what="the consent URL",
        )
        assert status["url"].startswith(sandbox.url)
        cluster.wait_condition("googleclients", "acme", "Ready", "False", "ConsentRequired")
    finally:
        cluster.core.delete_namespace(missing)
