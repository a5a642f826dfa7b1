"""Day-2 requests on the real API server with the operator and the sandbox Google: refresh
now, re-consent and revoke, by annotation, through the CLI and through the kubectl plugin."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from devkit import ControlPlane
from devkit.servers import SandboxServer
from fixtures.installs import kubectl_binary
from fixtures.operator import (
    OWNER,
    Cluster,
    OperatorFactory,
    authorized_client,
    branch_spec,
    free_port,
    hand_over,
    wait_for,
)
from fixtures.sandbox import post_token, redirect_query, ticked_scopes
from google_token_operator.timeutil import parse_rfc3339
from google_token_sandbox import TOKENINFO_PATH
from google_token_sandbox.demo_data import OTHER_EMAIL, OWNER_LOCATION_IDS

ANNOTATION = "google-token-operator.dev/{}-requested-at"


def command(
    control_plane: ControlPlane, *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "google_token_operator", *args],
        env={**os.environ, "KUBECONFIG": str(control_plane.kubeconfig)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def request(cluster: Cluster, kind: str, value: str | None) -> None:
    cluster.annotate("googleclients", "acme", {ANNOTATION.format(kind): value})


def handled(cluster: Cluster, kind: str) -> str | None:
    status = (cluster.get("googleclients", "acme") or {}).get("status") or {}
    value: str | None = (status.get("handledRequests") or {}).get(kind)
    return value


def refresh_calls(sandbox: SandboxServer) -> int:
    return sandbox.state.counts["token.refresh_token"]


def tokeninfo(sandbox: SandboxServer, access_token: str) -> dict[str, str]:
    answer = requests.get(
        sandbox.url + TOKENINFO_PATH, params={"access_token": access_token}, timeout=10
    )
    info: dict[str, str] = answer.json() if answer.status_code == 200 else {}
    return info


def consent_as(sandbox: SandboxServer, url: str, email: str) -> dict[str, str]:
    """A person opens the consent URL, picks `email` and allows; what Google redirects with."""
    sandbox.state.auto_approve = False
    page = requests.get(url, timeout=10)
    request_id = page.text.split('name="request_id" value="')[1].split('"')[0]
    answer = requests.post(
        f"{sandbox.url}/signin/oauth/consent",
        data=[
            ("request_id", request_id),
            ("decision", "allow"),
            ("email", email),
            *ticked_scopes(page.text),
        ],
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302, answer.text
    return redirect_query(answer)


@pytest.mark.slow
def test_refresh_now_acts_once_per_value_and_a_burst_is_rate_limited(
    control_plane: ControlPlane,
    cluster: Cluster,
    sandbox: SandboxServer,
    start_operator: OperatorFactory,
) -> None:
    start_operator()
    authorized_client(cluster, sandbox)
    cluster.wait_condition("googleclients", "acme", "Ready", "True", timeout=20)
    assert refresh_calls(sandbox) == 1
    served = (cluster.secret("acme-google-token") or {})["access_token"]

    # The token is minutes from its refresh window: `refresh` gets a new one anyway (after
    # the one-minute bound that follows the last token, so this takes up to a minute).
    done = command(control_plane, "refresh", "acme", "-n", cluster.namespace)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "GoogleClient" in done.stdout and "refreshed" in done.stdout
    assert refresh_calls(sandbox) == 2
    fresh = (cluster.secret("acme-google-token") or {})["access_token"]
    assert fresh != served and tokeninfo(sandbox, fresh)["email"] == OWNER

    # A burst of 50 requests within a minute: the documented bound is 2 token calls.
    started = time.monotonic()
    for number in range(50):
        request(cluster, "refresh", f"burst-{number}")
    burst_seconds = time.monotonic() - started
    assert burst_seconds < 60
    wait_for(lambda: handled(cluster, "refresh") == "burst-49", 90, what="the burst handled")
    burst_calls = refresh_calls(sandbox) - 2
    print(f"\n[day2] 50 refresh requests in {burst_seconds:.1f} s -> {burst_calls} token call(s)")
    assert 1 <= burst_calls <= 2

    # The same value again (removed, then set back) asks nothing: after a later pass (it
    # publishes a consent URL for a re-consent request) no refresh is pending or made.
    calls = refresh_calls(sandbox)
    request(cluster, "refresh", None)
    request(cluster, "refresh", "burst-49")
    request(cluster, "reauthorize", "marker")
    wait_for(
        lambda: ((cluster.get("googleclients", "acme") or {}).get("status") or {}).get(
            "authorization"
        ),
        20,
        what="the consent URL of the marker request",
    )
    status = (cluster.get("googleclients", "acme") or {}).get("status") or {}
    next_refresh = parse_rfc3339(status["nextRefreshTime"])
    assert next_refresh - parse_rfc3339(status["lastRefreshTime"]) > dt.timedelta(minutes=10)
    assert refresh_calls(sandbox) == calls


def test_reauthorize_serves_the_old_token_until_the_new_grant_is_stored(
    control_plane: ControlPlane,
    cluster: Cluster,
    sandbox: SandboxServer,
    start_operator: OperatorFactory,
) -> None:
    port = free_port()
    start_operator("--consent-port", str(port))
    old_grant = authorized_client(cluster, sandbox)
    cluster.wait_condition("googleclients", "acme", "Ready", "True", timeout=20)
    served = (cluster.secret("acme-google-token") or {})["access_token"]
    arguments = ["reauthorize", "acme", "-n", cluster.namespace, "--timeout", "120"]
    waiting = subprocess.Popen(
        [sys.executable, "-m", "google_token_operator", *arguments],
        env={**os.environ, "KUBECONFIG": str(control_plane.kubeconfig)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert waiting.stdout is not None
    url = next(line.strip() for line in waiting.stdout if line.strip().startswith(sandbox.url))

    # While the new consent waits, the current grant keeps working and is served.
    body = cluster.get("googleclients", "acme") or {}
    assert body["status"]["authorization"]["url"] == url
    assert cluster.condition("googleclients", "acme", "Authorized")["status"] == "True"
    assert cluster.condition("googleclients", "acme", "Ready")["status"] == "True"
    assert (cluster.secret("acme-google-token") or {})["access_token"] == served
    assert tokeninfo(sandbox, served)["email"] == OWNER

    # Another account consents: its grant replaces the old one, which is revoked at Google.
    assert hand_over(cluster, port, consent_as(sandbox, url, OTHER_EMAIL))["outcome"] == (
        "authorized"
    )
    rest, _ = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, rest
    assert f"account {OTHER_EMAIL}" in rest
    status = (cluster.get("googleclients", "acme") or {}).get("status") or {}
    assert status["account"] == {"email": OTHER_EMAIL}
    assert "authorization" not in status
    assert status["handledRequests"]["reauthorize"]
    new_token = wait_for(
        lambda: (
            (cluster.secret("acme-google-token") or {}).get("access_token") != served
            and (cluster.secret("acme-google-token") or {})["access_token"]
        ),
        20,
        what="the new grant's token served",
    )
    assert tokeninfo(sandbox, new_token)["email"] == OTHER_EMAIL
    answer = post_token(sandbox, grant_type="refresh_token", refresh_token=old_grant)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")
    assert sandbox.state.counts["revoke"] == 1


def test_revoke_through_the_kubectl_plugin_leaves_no_token_anywhere(
    control_plane: ControlPlane,
    cluster: Cluster,
    sandbox: SandboxServer,
    start_operator: OperatorFactory,
) -> None:
    operator = start_operator()
    refresh_token = authorized_client(cluster, sandbox)
    cluster.create("branches", "downtown", branch_spec(OWNER_LOCATION_IDS[0]))
    cluster.wait_condition("branches", "downtown", "Ready", "True", timeout=20)
    cluster.put_secret("unrelated", {"access_token": "not the operator's"})

    # The plugin is the installed command under the name kubectl looks for on PATH.
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        "KUBECONFIG": str(control_plane.kubeconfig),
    }
    kubectl = kubectl_binary(control_plane)
    plugins = subprocess.run(
        [kubectl, "plugin", "list"], env=env, capture_output=True, text=True, timeout=30
    )
    assert f"{bin_dir}/kubectl-google_token" in plugins.stdout, plugins.stdout + plugins.stderr

    revoked = subprocess.run(
        [kubectl, "google-token", "revoke", "acme", "-n", cluster.namespace],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    assert "holds no refresh token" in revoked.stdout
    assert "The grant was revoked at Google." in revoked.stdout  # no other client keeps it

    # Revoked at Google: the grant's refresh token is dead there.
    assert sandbox.state.counts["revoke"] == 1
    answer = post_token(sandbox, grant_type="refresh_token", refresh_token=refresh_token)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")
    # And gone here: the private Secret and the token Secrets; what is not ours stays.
    for name in ("acme-google-oauth", "acme-google-token", "downtown-google-token"):
        assert cluster.secret(name) is None, name
    assert cluster.secret("unrelated") == {"access_token": "not the operator's"}
    authorized = cluster.condition("googleclients", "acme", "Authorized")
    assert (authorized["status"], authorized["reason"]) == ("False", "RevokedOnRequest")
    cluster.wait_condition("branches", "downtown", "Ready", "False", "ClientNotReady", timeout=10)

    shown = subprocess.run(
        [kubectl, "google-token", "status", "-n", cluster.namespace, "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    [client] = view["clients"]
    assert (client["name"], client["reason"], client["secondsLeft"]) == (
        "acme",
        "RevokedOnRequest",
        None,
    )
    assert client["consentURL"].startswith(sandbox.url)
    assert client["openRequests"] == []
    [branch] = view["branches"]
    assert (branch["name"], branch["reason"], branch["tokenSecretName"]) == (
        "downtown",
        "ClientNotReady",
        None,
    )

    # The same value again does nothing; a refresh request now is answered at once.
    calls = refresh_calls(sandbox)  # the operator's one, and this test's own above
    value = handled(cluster, "revoke")
    assert value is not None
    request(cluster, "revoke", None)
    request(cluster, "revoke", value)
    request(cluster, "refresh", "after-revoke")
    wait_for(lambda: handled(cluster, "refresh") == "after-revoke", 20, what="refresh answered")
    assert sandbox.state.counts["revoke"] == 1
    assert refresh_calls(sandbox) == calls

    operator.stop()
    everywhere = {
        "operator log": operator.log(),
        "status": json.dumps(cluster.get("googleclients", "acme")),
        "events": cluster.all_events_text(),
        "status command": shown.stdout,
    }
    for place, text in everywhere.items():
        assert refresh_token not in text, f"the refresh token is in the {place}"


def test_the_commands_name_a_missing_client(
    control_plane: ControlPlane, cluster: Cluster, start_operator: OperatorFactory
) -> None:
    start_operator()
    for verb in ("refresh", "reauthorize", "revoke"):
        result = command(control_plane, verb, "nobody", "-n", cluster.namespace, timeout=60)
        assert result.returncode == 1, (verb, result.stdout, result.stderr)
        assert f"nobody not found in namespace {cluster.namespace}" in result.stdout
    empty = command(control_plane, "status", "-n", cluster.namespace)
    assert empty.returncode == 0
    assert empty.stdout.strip() == "No GoogleClients or Branches found."
