"""`google-token-operator authorize NAME -n NS` against the real API server and operator."""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import parse_qsl, urlsplit

import requests

from devkit import ControlPlane
from devkit.servers import SandboxServer
from fixtures.operator import OWNER, Cluster, OperatorFactory, free_port, hand_over


def authorize(control_plane: ControlPlane, namespace: str, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "google_token_operator",
            "authorize",
            name,
            "-n",
            namespace,
            "--timeout",
            "60",
        ],
        env={**os.environ, "KUBECONFIG": str(control_plane.kubeconfig)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_authorize_prints_the_url_and_waits_for_the_account(
    control_plane: ControlPlane,
    cluster: Cluster,
    sandbox: SandboxServer,
    start_operator: OperatorFactory,
) -> None:
    port = free_port()
    start_operator("--consent-port", str(port))
    cluster.put_demo_credentials()
    cluster.create("googleclients", "acme", {"credentialsSecretRef": {"name": "acme-oauth"}})
    command = authorize(control_plane, cluster.namespace, "acme")
    assert command.stdout is not None
    url = ""
    for line in command.stdout:
        if line.strip().startswith(sandbox.url):
            url = line.strip()
            break
    assert url, "authorize printed no consent URL"

    # The person approves; Google redirects to the callback, which hands over to the operator.
    sandbox.state.auto_approve = True
    redirect = requests.get(url, allow_redirects=False, timeout=10).headers["Location"]
    query = dict(parse_qsl(urlsplit(redirect).query))
    assert hand_over(cluster, port, query)["outcome"] == "authorized"

    rest, _ = command.communicate(timeout=60)
    assert command.returncode == 0, rest
    assert OWNER in rest
    assert "acme-google-token" in rest


def test_authorize_names_a_missing_client(control_plane: ControlPlane, cluster: Cluster) -> None:
    command = authorize(control_plane, cluster.namespace, "nobody")
    out, _ = command.communicate(timeout=30)
    assert command.returncode == 1
    assert "nobody" in out and cluster.namespace in out
