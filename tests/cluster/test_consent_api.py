"""Consent through the operator's consent API, as the callback pod hands it over.

The browser part (sandbox consent page, callback pages) is tested in tests/browser; here
the redirect from Google is followed by hand so each state rule can be checked exactly.
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from kubernetes.client import ApiException, AppsV1Api

from devkit.servers import SandboxServer
from fixtures.operator import (
    OWNER,
    Cluster,
    OperatorFactory,
    OperatorProcess,
    free_port,
    hand_over,
    wait_for,
)
from google_token_operator.consent.workload import CALLBACK_NAME
from google_token_operator.consent_state import pending as consent


class Consent:
    """Drives one GoogleClient's consent: Google's side through the sandbox, ours by API."""

    def __init__(self, cluster: Cluster, sandbox: SandboxServer, port: int) -> None:
        self.cluster = cluster
        self.sandbox = sandbox
        self.port = port

    def url(self, previous: str = "") -> str:
        def published() -> str | None:
            body = self.cluster.get("googleclients", "acme") or {}
            url = ((body.get("status") or {}).get("authorization") or {}).get("url")
            return url if url and url != previous else None

        found: str = wait_for(published, 20, what="a consent URL in status")
        return found

    def google_redirect(self, url: str, allow: bool = True) -> dict[str, str]:
        """What Google appends to the redirect URI after the person's choice."""
        if allow:
            self.sandbox.state.auto_approve = True
            response = requests.get(url, allow_redirects=False, timeout=10)
        else:
            self.sandbox.state.auto_approve = False
            page = requests.get(url, timeout=10)
            request_id = page.text.split('name="request_id" value="')[1].split('"')[0]
            response = requests.post(
                f"{self.sandbox.url}/signin/oauth/consent",
                data={"request_id": request_id, "decision": "deny"},
                allow_redirects=False,
                timeout=10,
            )
        assert response.status_code == 302, response.text
        return dict(parse_qsl(urlsplit(response.headers["Location"]).query))

    def hand_over(self, **query: str) -> dict[str, Any]:
        return hand_over(self.cluster, self.port, query)


@pytest.fixture
def flow(
    cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory
) -> tuple[Consent, OperatorProcess]:
    port = free_port()
    process = start_operator("--consent-port", str(port), CONSENT_TTL="60s")
    cluster.put_demo_credentials()
    cluster.create(
        "googleclients",
        "acme",
        {"credentialsSecretRef": {"name": "acme-oauth"}, "loginHint": OWNER},
    )
    wait_for(lambda: requests_ok(port), 20, what="the consent API")
    return Consent(cluster, sandbox, port), process


def requests_ok(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok
    except requests.ConnectionError:
        return False


def test_consent_authorizes_and_issues_the_first_token_at_once(
    flow: tuple[Consent, OperatorProcess], cluster: Cluster, sandbox: SandboxServer
) -> None:
    driver, _ = flow
    pending = cluster.wait_condition(
        "googleclients", "acme", "Authorized", "False", "ConsentRequired"
    )
    assert "status.authorization.url" in pending["message"]
    url = driver.url()
    query = dict(parse_qsl(urlsplit(url).query))
    assert query["access_type"] == "offline" and query["prompt"] == "consent"
    assert query["code_challenge_method"] == "S256" and query["login_hint"] == OWNER
    state_secret = cluster.secret(consent.consent_secret_name(query["state"]))
    assert state_secret is not None
    assert query["state"] not in str(state_secret)
    assert state_secret["state_sha256"] == consent.state_hash(query["state"])

    started = time.monotonic()
    answer = driver.hand_over(**driver.google_redirect(url))
    assert answer["outcome"] == "authorized", answer
    assert answer["account"] == OWNER
    assert answer["tokenSecret"] == "acme-google-token"
    cluster.wait_condition("googleclients", "acme", "Ready", "True", "TokenValid", timeout=10)
    assert time.monotonic() - started < 10
    cluster.wait_condition("googleclients", "acme", "Authorized", "True")
    data = cluster.secret("acme-google-token")
    assert data is not None
    token = data["access_token"]
    response = requests.get(
        f"{sandbox.url}/v1/userinfo", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.json()["email"] == OWNER
    # The exchange's access token is used as is: no refresh call was needed.
    assert sandbox.state.counts["token.authorization_code"] == 1
    assert sandbox.state.counts["token.refresh_token"] == 0
    # The spent state is cleaned up and the URL leaves the status.
    wait_for(
        lambda: cluster.secret(consent.consent_secret_name(query["state"])) is None,
        10,
        what="the state Secret removed",
    )
    status = (cluster.get("googleclients", "acme") or {})["status"]
    assert "authorization" not in status
    assert status["account"]["email"] == OWNER


def test_denied_consent_stores_nothing_and_offers_a_new_link(
    flow: tuple[Consent, OperatorProcess], cluster: Cluster
) -> None:
    driver, _ = flow
    url = driver.url()
    redirect = driver.google_redirect(url, allow=False)
    assert redirect["error"] == "access_denied"
    answer = driver.hand_over(**redirect)
    assert answer["outcome"] == "denied" and answer["status"] == 400
    cluster.wait_condition("googleclients", "acme", "Authorized", "False", "ConsentDenied")
    cluster.wait_events("acme", "ConsentDenied")
    assert cluster.secret("acme-google-oauth") is None
    new_url = driver.url(previous=url)
    assert new_url != url
    # Denied stays the reason until someone consents.
    assert cluster.condition("googleclients", "acme", "Authorized")["reason"] == "ConsentDenied"


def test_reused_unknown_and_tampered_states_are_refused(
    flow: tuple[Consent, OperatorProcess], cluster: Cluster, sandbox: SandboxServer
) -> None:
    driver, _ = flow
    redirect = driver.google_redirect(driver.url())
    state = redirect["state"]
    tampered = state[:-1] + ("A" if state[-1] != "A" else "B")
    for bad in ({**redirect, "state": tampered}, {**redirect, "state": "unknown"}, {"code": "x"}):
        answer = driver.hand_over(**bad)
        assert answer["outcome"] == "invalid_state", answer
    assert sandbox.state.counts["token.authorization_code"] == 0
    assert driver.hand_over(**redirect)["outcome"] == "authorized"
    assert driver.hand_over(**redirect)["outcome"] == "invalid_state"  # reused
    assert sandbox.state.counts["token.authorization_code"] == 1


def test_two_concurrent_callbacks_with_one_state_exactly_one_wins(
    flow: tuple[Consent, OperatorProcess], sandbox: SandboxServer
) -> None:
    driver, _ = flow
    redirect = driver.google_redirect(driver.url())
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: driver.hand_over(**redirect), range(2)))
    outcomes = sorted(answer["outcome"] for answer in answers)
    assert outcomes == ["authorized", "invalid_state"]
    assert sandbox.state.counts["token.authorization_code"] == 1


def test_the_stored_pkce_verifier_is_the_one_sent(
    flow: tuple[Consent, OperatorProcess], cluster: Cluster, sandbox: SandboxServer
) -> None:
    driver, _ = flow
    url = driver.url()
    redirect = driver.google_redirect(url)
    name = consent.consent_secret_name(redirect["state"])
    stored = cluster.secret(name)
    assert stored is not None
    # Swap the verifier the operator will send: Google (the sandbox) must refuse the code.
    cluster.put_secret(
        name,
        {**stored, "code_verifier": consent.draw_fresh().verifier},
        labels={
            "app.kubernetes.io/managed-by": "google-token-operator",
            "google-token-operator.dev/client": "acme",
            "google-token-operator.dev/role": "consent",
            "google-token-operator.dev/client-namespace": cluster.namespace,
            "google-token-operator.dev/client-uid": (cluster.get("googleclients", "acme") or {})[
                "metadata"
            ]["uid"],
        },
    )
    answer = driver.hand_over(**redirect)
    assert answer["outcome"] == "exchange_failed"
    assert "invalid_grant" in answer["message"]
    assert cluster.secret("acme-google-oauth") is None
    # With the verifier the operator stored itself, the next consent succeeds.
    fresh = driver.google_redirect(driver.url(previous=url))
    assert driver.hand_over(**fresh)["outcome"] == "authorized"
    assert sandbox.state.counts["token.authorization_code"] == 2


def test_expired_link_is_refused_and_replaced(
    cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory
) -> None:
    port = free_port()
    start_operator("--consent-port", str(port), CONSENT_TTL="3s")
    cluster.put_demo_credentials()
    cluster.create("googleclients", "acme", {"credentialsSecretRef": {"name": "acme-oauth"}})
    driver = Consent(cluster, sandbox, port)
    url = driver.url()
    redirect = driver.google_redirect(url)
    time.sleep(3.5)
    assert driver.hand_over(**redirect)["outcome"] == "invalid_state"
    assert driver.url(previous=url) != url  # a fresh link, published by itself
    assert sandbox.state.counts["token.authorization_code"] == 0


def test_callback_workload_runs_only_while_consent_is_pending(
    cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory
) -> None:
    port = free_port()
    start_operator("--consent-port", str(port), CALLBACK_IDLE="2s", CALLBACK_IMAGE="gto:test")
    apps = AppsV1Api(cluster.core.api_client)

    def replicas() -> int | None:
        try:
            deployment = apps.read_namespaced_deployment(CALLBACK_NAME, cluster.namespace)
        except ApiException as error:
            assert error.status == 404
            return None
        return int(deployment.spec.replicas)

    assert replicas() is None
    cluster.put_demo_credentials()
    cluster.create("googleclients", "acme", {"credentialsSecretRef": {"name": "acme-oauth"}})
    wait_for(lambda: replicas() == 1, 20, what="the callback Deployment")
    deployment = apps.read_namespaced_deployment(CALLBACK_NAME, cluster.namespace)
    container = deployment.spec.template.spec.containers[0]
    assert container.image == "gto:test"
    assert container.args[0] == "callback"
    assert deployment.spec.template.spec.automount_service_account_token is False
    service = cluster.core.read_namespaced_service(CALLBACK_NAME, cluster.namespace)
    assert service.spec.selector == {"app.kubernetes.io/name": CALLBACK_NAME}
    cluster.core.read_namespaced_service_account(CALLBACK_NAME, cluster.namespace)

    driver = Consent(cluster, sandbox, port)
    assert driver.hand_over(**driver.google_redirect(driver.url()))["outcome"] == "authorized"
    wait_for(lambda: replicas() == 0, 20, what="the callback scaled to zero")


def test_a_spec_change_that_affects_consent_voids_the_pending_link(
    flow: tuple[Consent, OperatorProcess], cluster: Cluster, sandbox: SandboxServer
) -> None:
    driver, _ = flow
    url = driver.url()
    redirect = driver.google_redirect(url)
    cluster.patch_spec(
        "googleclients",
        "acme",
        {"scopes": ["https://www.googleapis.com/auth/business.manage", "profile"]},
    )
    fresh = driver.url(previous=url)
    assert "profile" in dict(parse_qsl(urlsplit(fresh).query))["scope"].split()
    assert driver.hand_over(**redirect)["outcome"] == "invalid_state"
    assert sandbox.state.counts["token.authorization_code"] == 0
