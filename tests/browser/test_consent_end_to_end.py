"""The whole consent in real Chromium: the operator's consent URL → the sandbox consent page →
Allow (or Deny) → the callback process → the operator → tokens in the cluster.

The callback runs as a real process with a kubeconfig of its own ServiceAccount, which has no
roles at all: the flow works under exactly the callback's RBAC, and that identity is refused
Secrets everywhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from kubernetes import client, config
from kubernetes.client import ApiException
from playwright.sync_api import Page

from devkit import ControlPlane
from devkit.servers import SandboxServer
from fixtures.browser import screenshot
from fixtures.operator import (
    OWNER,
    Cluster,
    OperatorFactory,
    callback_key,
    free_port,
    wait_for,
)
from google_token_operator.consent.workload import CALLBACK_NAME
from google_token_sandbox.demo_data import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_NAME,
    DEMO_CLIENT_SECRET,
    OTHER_EMAIL,
)


class Flow:
    def __init__(self, cluster: Cluster, callback_url: str) -> None:
        self.cluster = cluster
        self.callback_url = callback_url

    def consent_url(self) -> str:
        def published() -> str | None:
            status = (self.cluster.get("googleclients", "acme") or {}).get("status") or {}
            url: str | None = (status.get("authorization") or {}).get("url")
            return url

        found: str = wait_for(published, 20, what="status.authorization.url")
        return found

    def press(self, page: Page, button: str) -> int:
        """Press Allow or Deny on the consent page; the HTTP status of the callback's page."""
        with page.expect_response(lambda r: r.url.startswith(self.callback_url + "?")) as landed:
            page.get_by_role("button", name=button).click()
        page.wait_for_load_state()
        status: int = landed.value.status
        return status


def callback_kubeconfig(control_plane: ControlPlane, namespace: str, folder: Path) -> Path:
    """A kubeconfig for the callback's ServiceAccount (no Role is bound to it, by design)."""
    control_plane.kubectl("create", "serviceaccount", CALLBACK_NAME, "-n", namespace)
    token = control_plane.mint_service_account_token(namespace, CALLBACK_NAME)
    return control_plane.write_kubeconfig(folder / "callback.kubeconfig", token, CALLBACK_NAME)


@pytest.fixture
def flow(
    control_plane: ControlPlane,
    cluster: Cluster,
    sandbox: SandboxServer,
    start_operator: OperatorFactory,
    test_output: Path,
) -> Iterator[Flow]:
    """GoogleClient acme, the login hint preselecting the owner's account."""
    yield from _flow(control_plane, cluster, sandbox, start_operator, test_output, loginHint=OWNER)


@pytest.fixture
def pinned_flow(
    control_plane: ControlPlane,
    cluster: Cluster,
    sandbox: SandboxServer,
    start_operator: OperatorFactory,
    test_output: Path,
) -> Iterator[Flow]:
    """GoogleClient acme that only the owner's account may consent for, and no login hint:
    Google's page lets the person pick any account."""
    yield from _flow(
        control_plane, cluster, sandbox, start_operator, test_output, allowedAccounts=[OWNER]
    )


def _flow(
    control_plane: ControlPlane,
    cluster: Cluster,
    sandbox: SandboxServer,
    start_operator: OperatorFactory,
    test_output: Path,
    **spec: object,
) -> Iterator[Flow]:
    consent_port, callback_port = free_port(), free_port()
    callback_url = f"http://127.0.0.1:{callback_port}/oauth2/callback"
    sandbox.state.register_client(
        DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, [callback_url], DEMO_CLIENT_NAME
    )
    start_operator("--consent-port", str(consent_port), CALLBACK_URL=callback_url)
    kubeconfig = callback_kubeconfig(control_plane, cluster.namespace, test_output)
    key_file = test_output / "consent-api-key"  # as the callback pod has it mounted
    with (test_output / "callback.log").open("wb") as log:
        callback = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "google_token_operator",
                "callback",
                "--host",
                "127.0.0.1",
                "--port",
                str(callback_port),
                "--operator-url",
                f"http://127.0.0.1:{consent_port}",
                "--api-key-file",
                str(key_file),
            ],
            env={**os.environ, "KUBECONFIG": str(kubeconfig)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: _ok(f"http://127.0.0.1:{callback_port}/healthz"), 20, what="the callback")
        cluster.put_demo_credentials()
        cluster.create(
            "googleclients", "acme", {"credentialsSecretRef": {"name": "acme-oauth"}, **spec}
        )
        key_file.write_text(callback_key(cluster))
        yield Flow(cluster, callback_url)
    finally:
        callback.terminate()
        callback.wait(10)


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.ConnectionError:
        return False


def test_allow_in_chromium_authorizes_and_fills_the_secret(
    page: Page, flow: Flow, cluster: Cluster, sandbox: SandboxServer, test_output: Path
) -> None:
    page.goto(flow.consent_url())
    assert DEMO_CLIENT_NAME in page.inner_text("#app-name")
    screenshot(page, test_output / "consent.png")
    pressed = flow.press(page, "Allow")
    screenshot(page, test_output / "success.png")
    assert pressed == 200
    text = page.inner_text("main")
    assert f"GoogleClient {cluster.namespace}/acme" in text
    assert OWNER in text
    assert "acme-google-token" in text

    cluster.wait_condition("googleclients", "acme", "Authorized", "True", timeout=10)
    cluster.wait_condition("googleclients", "acme", "Ready", "True", "TokenValid", timeout=10)
    data = cluster.secret("acme-google-token")
    assert data is not None
    userinfo = requests.get(
        f"{sandbox.url}/v1/userinfo",
        headers={"Authorization": f"Bearer {data['access_token']}"},
        timeout=10,
    )
    assert userinfo.json()["email"] == OWNER
    for secret in sandbox.state.issued_secrets():
        assert secret not in page.content()
        assert secret not in (test_output / "callback.log").read_text()


def test_deny_in_chromium_stores_nothing(
    page: Page, flow: Flow, cluster: Cluster, sandbox: SandboxServer, test_output: Path
) -> None:
    url = flow.consent_url()
    page.goto(url)
    pressed = flow.press(page, "Deny")
    screenshot(page, test_output / "denied.png")
    assert pressed == 400
    assert page.inner_text("h1") == "Consent denied"
    cluster.wait_condition("googleclients", "acme", "Authorized", "False", "ConsentDenied")
    assert cluster.secret("acme-google-oauth") is None
    assert cluster.secret("acme-google-token") is None
    assert sandbox.state.counts["token"] == 0
    assert flow.consent_url() != url or wait_for(lambda: flow.consent_url() != url, 10)


def test_the_callback_identity_is_refused_secrets(
    control_plane: ControlPlane, cluster: Cluster, test_output: Path
) -> None:
    kubeconfig = callback_kubeconfig(control_plane, cluster.namespace, test_output)
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    for call in (
        lambda: core.list_namespaced_secret(cluster.namespace),
        lambda: core.list_secret_for_all_namespaces(),
        lambda: core.read_namespaced_secret("acme-oauth", cluster.namespace),
        lambda: core.list_namespaced_pod(cluster.namespace),
    ):
        with pytest.raises(ApiException) as refused:
            call()
        assert refused.value.status == 403


def test_an_account_that_is_not_allowed_is_refused_revoked_and_an_allowed_one_succeeds(
    page: Page, pinned_flow: Flow, cluster: Cluster, sandbox: SandboxServer, test_output: Path
) -> None:
    url = pinned_flow.consent_url()
    page.goto(url)
    page.select_option("#email", OTHER_EMAIL)
    pressed = pinned_flow.press(page, "Allow")
    screenshot(page, test_output / "account-not-allowed.png")
    assert pressed == 403
    assert page.inner_text("h1") == "This Google account may not be connected"
    assert OTHER_EMAIL in page.inner_text("main")
    cluster.wait_condition("googleclients", "acme", "Authorized", "False", "AccountNotAllowed")
    assert cluster.secret("acme-google-oauth") is None
    assert cluster.secret("acme-google-token") is None
    assert sandbox.state.counts["revoke"] == 1
    assert sandbox.state.counts["token.refresh_token"] == 0

    page.goto(wait_for(lambda: pinned_flow.consent_url() != url and pinned_flow.consent_url(), 20))
    page.select_option("#email", OWNER)
    pressed = pinned_flow.press(page, "Allow")
    assert pressed == 200
    cluster.wait_condition("googleclients", "acme", "Ready", "True", "TokenValid", timeout=10)
    assert cluster.condition("googleclients", "acme", "Authorized")["reason"] == "Authorized"
    assert (cluster.get("googleclients", "acme") or {})["status"]["account"]["email"] == OWNER
    assert sandbox.state.counts["revoke"] == 1


def test_an_unticked_permission_stores_nothing_names_it_revokes_once_then_a_full_consent_works(
    page: Page, flow: Flow, cluster: Cluster, sandbox: SandboxServer, test_output: Path
) -> None:
    url = flow.consent_url()
    page.goto(url)
    page.get_by_role("checkbox", name="See, edit, create and delete your Google business").uncheck()
    pressed = flow.press(page, "Allow")
    screenshot(page, test_output / "scopes-not-granted.png")
    assert pressed == 403
    assert page.inner_text("h1") == "Some permissions were not granted"
    assert "business listings" in page.inner_text("#message")
    assert "tick every permission" in page.inner_text("main")
    unticked = cluster.wait_condition(
        "googleclients", "acme", "Authorized", "False", "ScopesNotGranted"
    )
    assert "business.manage" in unticked["message"]
    assert cluster.secret("acme-google-oauth") is None
    assert cluster.secret("acme-google-token") is None
    assert sandbox.state.counts["revoke"] == 1
    assert [g["revoke_calls"] for g in sandbox.state.grants(DEMO_CLIENT_ID)] == [1]

    page.goto(wait_for(lambda: flow.consent_url() != url and flow.consent_url(), 20))
    pressed = flow.press(page, "Allow")
    assert pressed == 200
    cluster.wait_condition("googleclients", "acme", "Ready", "True", "TokenValid", timeout=10)
    assert cluster.condition("googleclients", "acme", "Authorized")["reason"] == "Authorized"
    assert sandbox.state.counts["revoke"] == 1
