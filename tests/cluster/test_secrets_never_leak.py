"""The whole flow at DEBUG: no token, refresh token, code or client secret escapes, and the
metrics endpoint tells what it should."""

from __future__ import annotations

import json
import time

import requests
from test_consent_api import Consent

from devkit.servers import SandboxServer
from fixtures.operator import (
    Cluster,
    OperatorFactory,
    authorized_client,
    branch_spec,
    free_port,
    wait_for,
)
from google_token_sandbox.demo_data import DEMO_CLIENT_ID, OWNER_LOCATION_IDS


def test_no_secret_in_logs_events_status_or_metrics(
    cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory
) -> None:
    sandbox.state.token_lifetime = 12
    consent_port, metrics_port = free_port(), free_port()
    operator = start_operator(
        "--consent-port", str(consent_port), "--metrics-port", str(metrics_port)
    )
    # Consent through the API (a code is exchanged), Branches, refreshes, failures, revocation.
    cluster.put_demo_credentials()
    cluster.create("googleclients", "acme", {"credentialsSecretRef": {"name": "acme-oauth"}})
    driver = Consent(cluster, sandbox, consent_port)
    wait_for(lambda: _reachable(consent_port), 20, what="consent API")
    assert driver.hand_over(**driver.google_redirect(driver.url()))["outcome"] == "authorized"
    cluster.create("branches", "downtown", branch_spec(OWNER_LOCATION_IDS[0]))
    cluster.create("branches", "foreign", branch_spec("9999999999"))
    cluster.wait_condition("branches", "downtown", "Ready", "True", timeout=20)
    authorized_client(cluster, sandbox, name="second")
    sandbox.state.inject_token_faults(1, 503)
    wait_for(lambda: sandbox.state.counts["token.refresh_token"] >= 4, 30, what="refreshes")
    metrics = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    sandbox.state.revoke_grants(DEMO_CLIENT_ID)
    cluster.wait_condition("googleclients", "acme", "Authorized", "False", timeout=30)
    cluster.delete("branches", "downtown")
    time.sleep(1)
    operator.stop()

    secrets = sandbox.state.issued_secrets()
    kinds = {value.split("-")[0] for value in secrets}
    assert {"ya29.sbx", "1//sbx", "4/sbx"} <= kinds, kinds  # every kind was really issued
    log = operator.log()
    assert "DEBUG" in log or "Handler" in log  # it really logged at debug level
    statuses = json.dumps(
        [
            cluster.get(plural, name)
            for plural, name in (
                ("googleclients", "acme"),
                ("googleclients", "second"),
                ("branches", "foreign"),
            )
        ]
    )
    places = {
        "operator log": log,
        "events": cluster.all_events_text(),
        "status": statuses,
        "metrics": metrics,
    }
    for value in secrets:
        for place, text in places.items():
            assert value not in text, f"a {value.split('-')[0]} value leaked into the {place}"
            # Not even a recognisable prefix of it.
            assert value[:24] not in text, f"a prefix of a secret leaked into the {place}"


def test_metrics_describe_tokens_refreshes_and_readiness(
    cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory
) -> None:
    port = free_port()
    start_operator("--metrics-port", str(port))
    authorized_client(cluster, sandbox)
    cluster.create("branches", "downtown", branch_spec(OWNER_LOCATION_IDS[0]))
    cluster.wait_condition("branches", "downtown", "Ready", "True", timeout=20)
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    namespace = cluster.namespace
    expiry = _sample(text, "google_token_operator_token_expiration_timestamp_seconds", namespace)
    assert expiry > time.time() + 3000
    assert (
        _sample(text, "google_token_operator_refresh_attempts_total", namespace, 'result="success"')
        == 1
    )
    assert "google_token_operator_refresh_duration_seconds_count 1.0" in text
    assert _sample(text, "google_token_operator_ready_status", namespace, 'kind="Branch"') == 1
    assert (
        _sample(text, "google_token_operator_ready_status", namespace, 'kind="GoogleClient"') == 1
    )


def _sample(text: str, metric: str, namespace: str, *labels: str) -> float:
    for line in text.splitlines():
        wanted = (f'namespace="{namespace}"', *labels)
        if line.startswith(metric + "{") and all(label in line for label in wanted):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {metric} sample for {namespace} {labels}")


def _reachable(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok
    except requests.ConnectionError:
        return False
