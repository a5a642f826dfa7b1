"""What blocks a GoogleClient, as the CLI tells it, on the real API server (issue 19).

One row per blocker: the `status` row and `status NAME` name it, and `authorize`/`refresh`/
`reauthorize` (by NAME, or by -l) exit with its class and say it in their first line, at once
for a blocker only a person can fix.
Lean: one operator (plus one whose OPERATOR_NAMESPACE is missing) and one sandbox for the
whole module, each row a GoogleClient of its own.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from kubernetes import client

from devkit import ControlPlane
from devkit.servers import SandboxServer
from fixtures.cluster import namespace_name
from fixtures.operator import (
    OUTPUT,
    Cluster,
    OperatorProcess,
    authorized_client,
    free_port,
    hand_over,
    wait_for,
)
from google_token_sandbox.state import DEMO_CLIENT_ID, SandboxState

# A terminal blocker must end a command within this, process start included.
TERMINAL_WITHIN = 5.0
FIX, TIMED_OUT, DENIED = 5, 4, 3


@dataclasses.dataclass
class Stage:
    kubeconfig: Path
    watched: Cluster  # an operator watches it and keeps pending consent in it
    stranded: Cluster  # an operator watches it, its OPERATOR_NAMESPACE does not exist
    unwatched: Cluster  # no operator watches it
    sandbox: SandboxServer
    consent_port: int
    operator: OperatorProcess


@dataclasses.dataclass
class Ran:
    code: int
    lines: list[str]
    seconds: float

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def run_cli(stage: Stage, *args: str) -> Ran:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "google_token_operator", *args],
        env={**os.environ, "KUBECONFIG": str(stage.kubeconfig)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = (done.stdout + done.stderr).splitlines()
    return Ran(done.returncode, lines, time.monotonic() - started)


def start_cli(stage: Stage, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "google_token_operator", *args],
        env={**os.environ, "KUBECONFIG": str(stage.kubeconfig), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def detail_ready(stage: Stage, cluster: Cluster, name: str) -> str:
    """The `ready:` line of `status NAME`."""
    detail = run_cli(stage, "status", name, "-n", cluster.namespace)
    assert detail.code == 0, detail.text
    return next(line for line in detail.lines if line.startswith("  ready:"))


def status_row(stage: Stage, cluster: Cluster, name: str) -> list[str]:
    """The GoogleClient's row of `status -n NS` (the table a person reads), as cells."""
    ran = run_cli(stage, "status", "-n", cluster.namespace)
    assert ran.code == 0, ran.text
    rows = [line.split("  ") for line in ran.lines if line.split()[:1] == [name]]
    assert rows, ran.text
    return [cell.strip() for cell in rows[0] if cell.strip()]


def url_from(process: subprocess.Popen[str], prefix: str) -> str:
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip().startswith(prefix):
            return line.strip()
    raise AssertionError(f"no consent URL printed; exit {process.wait()}")


@pytest.fixture(scope="module")
def stage(control_plane: ControlPlane, kube_api: client.ApiClient, crds: None) -> Iterator[Stage]:
    core = client.CoreV1Api(kube_api)
    names = [namespace_name(f"blockers-{role}") for role in ("watched", "stranded", "unwatched")]
    for name in names:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    logs = OUTPUT / "test_blockers_cli"
    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    operators: list[OperatorProcess] = []
    with SandboxServer(SandboxState()) as sandbox:

        def operator(watched: str, operator_namespace: str, *extra: str) -> OperatorProcess:
            env = {
                **os.environ,
                **sandbox.env,
                "KUBECONFIG": str(control_plane.kubeconfig),
                "OPERATOR_NAMESPACE": operator_namespace,
                "PYTHONUNBUFFERED": "1",
            }
            args = ["-n", watched, "--metrics-port", "0", "--liveness-port", "0", *extra]
            log = logs / f"operator-{watched}.log"
            log.unlink(missing_ok=True)
            operators.append(OperatorProcess(args, env, log).start())
            return operators[-1]

        main = operator(names[0], names[0], "--consent-port", str(port))
        operator(names[1], f"missing-{secrets.token_hex(3)}", "--consent-port", "0")
        try:
            yield Stage(
                control_plane.kubeconfig,
                Cluster(kube_api, names[0]),
                Cluster(kube_api, names[1]),
                Cluster(kube_api, names[2]),
                sandbox,
                port,
                main,
            )
        finally:
            with ThreadPoolExecutor(len(operators)) as pool:
                list(pool.map(OperatorProcess.stop, operators))
            for name in names:
                core.delete_namespace(name)


def no_secret(stage: Stage) -> tuple[Cluster, str]:
    stage.watched.create("googleclients", "nosecret", {"credentialsSecretRef": {"name": "absent"}})
    return stage.watched, "nosecret"


def half_secret(stage: Stage) -> tuple[Cluster, str]:
    stage.watched.put_secret("half-oauth", {"client_id": DEMO_CLIENT_ID})
    stage.watched.create("googleclients", "half", {"credentialsSecretRef": {"name": "half-oauth"}})
    return stage.watched, "half"


def stranded(stage: Stage) -> tuple[Cluster, str]:
    stage.stranded.put_demo_credentials()
    stage.stranded.create("googleclients", "acme", {"credentialsSecretRef": {"name": "acme-oauth"}})
    return stage.stranded, "acme"


def conflict(stage: Stage) -> tuple[Cluster, str]:
    stage.watched.put_demo_credentials("taken-oauth")
    # Someone else's Secret under the name the client's refresh token would get.
    stage.watched.put_secret("taken-google-oauth", {"note": "not the operator's"})
    stage.watched.create(
        "googleclients", "taken", {"credentialsSecretRef": {"name": "taken-oauth"}}
    )
    return stage.watched, "taken"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (no_secret, "CredentialsSecretNotFound"),
        (half_secret, "CredentialsSecretInvalid"),
        (stranded, "OperatorNamespaceMissing"),
        (conflict, "SecretConflict"),
    ],
    ids=["no-credentials-secret", "credentials-missing-a-key", "namespace-missing", "conflict"],
)
def test_a_blocker_to_fix_is_named_and_ends_every_wait_at_once(
    stage: Stage,
    control_plane: ControlPlane,
    make: Callable[[Stage], tuple[Cluster, str]],
    reason: str,
) -> None:
    cluster, name = make(stage)
    cluster.wait_condition("googleclients", name, "Ready", "False", reason)
    blocked = f"GoogleClient {cluster.namespace}/{name} is blocked ({reason}): "

    assert status_row(stage, cluster, name)[1:4] == ["-", "False", reason]
    # `status NAME`, and a refresh of the clients a label chooses (-l): named, and not asked.
    control_plane.kubectl("label", "googleclient", name, f"blocker={name}", "-n", cluster.namespace)
    with ThreadPoolExecutor(2) as pool:
        detail, chosen = pool.map(
            lambda args: run_cli(stage, *args, "-n", cluster.namespace),
            [("status", name), ("refresh", "-l", f"blocker={name}")],
        )
    assert detail.code == 0 and f"  ready:          False {reason}" in detail.lines, detail.text
    assert (chosen.code, len(chosen.lines)) == (FIX, 1), chosen.text
    assert chosen.lines[0].startswith(blocked), chosen.text
    # One after the other: side by side, on 2 busy cores, Python's start-up alone can take 5 s.
    for command in ("authorize", "refresh", "reauthorize"):
        ran = run_cli(stage, command, name, "-n", cluster.namespace, "--timeout", "60")
        assert (ran.code, command) == (FIX, command), ran.text
        assert ran.lines[0].startswith(blocked), ran.text
        assert ran.seconds < TERMINAL_WITHIN, (command, ran.seconds)
    # Asking could not help, so nothing was asked (by NAME or by -l).
    annotations = (cluster.get("googleclients", name) or {})["metadata"].get("annotations") or {}
    assert not [key for key in annotations if key.endswith("-requested-at")]


def test_a_consent_google_refuses_the_client_for_is_recorded_and_ends_authorize(
    stage: Stage,
) -> None:
    cluster, wrong = stage.watched, f"wrong-{secrets.token_hex(8)}"
    cluster.put_secret("bad-oauth", {"client_id": DEMO_CLIENT_ID, "client_secret": wrong})
    cluster.create("googleclients", "bad", {"credentialsSecretRef": {"name": "bad-oauth"}})
    authorize = start_cli(stage, "authorize", "bad", "-n", cluster.namespace, "--timeout", "60")
    url = url_from(authorize, stage.sandbox.url)
    stage.sandbox.state.auto_approve = True
    redirect = requests.get(url, allow_redirects=False, timeout=10).headers["Location"]
    query = dict(parse_qsl(urlsplit(redirect).query))

    assert hand_over(cluster, stage.consent_port, query)["outcome"] == "exchange_failed"
    handed = time.monotonic()
    rest, _ = authorize.communicate(timeout=30)
    assert authorize.returncode == FIX, rest
    assert time.monotonic() - handed < TERMINAL_WITHIN
    assert "failed at" in rest and "(ClientCredentialsInvalid)" in rest
    assert "fix client_id/client_secret" in rest

    body = cluster.get("googleclients", "bad") or {}
    failure = body["status"]["lastConsentFailure"]
    assert failure["reason"] == "ClientCredentialsInvalid" and failure["time"]
    cluster.wait_condition("googleclients", "bad", "Ready", "False", "ClientCredentialsInvalid")
    assert "authorization" not in (cluster.get("googleclients", "bad") or {})["status"]
    consent_event = wait_for(
        lambda: [
            event
            for event in cluster.events("bad")
            if event["reason"] == "ClientCredentialsInvalid"
            and event["message"].startswith("Consent failed: Google answered HTTP 401")
        ],
        10,
        what="the Event of the failed consent",
    )
    assert consent_event[0]["type"] == "Warning"
    assert (
        "Consent for GoogleClient " + f"{cluster.namespace}/bad failed (ClientCredentialsInvalid)"
        in (stage.operator.log())
    )
    assert status_row(stage, cluster, "bad")[1:4] == ["-", "False", "ClientCredentialsInvalid"]
    assert detail_ready(stage, cluster, "bad").endswith("False ClientCredentialsInvalid")
    again = run_cli(stage, "authorize", "bad", "-n", cluster.namespace)
    assert again.code == FIX and again.seconds < TERMINAL_WITHIN, again.text
    assert "(ClientCredentialsInvalid)" in again.lines[0]
    for command in ("refresh", "reauthorize"):  # blocked too: nothing to ask for
        ran = run_cli(stage, command, "bad", "-n", cluster.namespace, "--timeout", "60")
        assert (ran.code, command) == (FIX, command), ran.text
        assert "(ClientCredentialsInvalid)" in ran.lines[0] and ran.seconds < TERMINAL_WITHIN

    # Leak scan: neither the client secret, nor the code, nor the state, anywhere.
    everywhere = "\n".join(
        [
            rest,
            again.text,
            json.dumps(cluster.get("googleclients", "bad")),
            cluster.all_events_text(),
            stage.operator.log(),
        ]
    )
    for secret in (wrong, query["code"], query["state"]):
        assert secret not in everywhere


def test_a_refresh_inside_the_rate_limit_says_until_when(stage: Stage) -> None:
    cluster = stage.watched
    authorized_client(cluster, stage.sandbox, "fresh")
    cluster.wait_condition("googleclients", "fresh", "Ready", "True", "TokenValid")

    assert status_row(stage, cluster, "fresh")[2:4] == ["True", "TokenValid"]
    assert detail_ready(stage, cluster, "fresh").endswith("True TokenValid")
    ran = run_cli(stage, "refresh", "fresh", "-n", cluster.namespace, "--timeout", "3")
    assert ran.code == TIMED_OUT, ran.text
    assert ran.lines[0].startswith(f"Asked for refresh of GoogleClient {cluster.namespace}/fresh")
    assert "It waits for the rate limit until " in ran.lines[0]
    assert ran.lines[-1].startswith("Rate-limited until "), ran.text


def test_without_an_operator_the_commands_say_it_has_not_answered(stage: Stage) -> None:
    cluster = stage.unwatched
    cluster.put_demo_credentials()
    cluster.create("googleclients", "alone", {"credentialsSecretRef": {"name": "acme-oauth"}})

    assert status_row(stage, cluster, "alone")[1:4] == ["-", "Unknown", "NotObserved"]
    assert detail_ready(stage, cluster, "alone").endswith("NotObserved")
    # Side by side: each only waits out its timeout.
    with ThreadPoolExecutor(3) as pool:
        authorize, *requests_ = pool.map(
            lambda command: run_cli(
                stage, command, "alone", "-n", cluster.namespace, "--timeout", "3"
            ),
            ("authorize", "refresh", "reauthorize"),
        )
    assert authorize.code == TIMED_OUT, authorize.text
    assert authorize.lines[0].startswith(
        f"GoogleClient {cluster.namespace}/alone: no operator has reported on this GoogleClient"
    ), authorize.text
    assert "The operator has not acknowledged" in authorize.lines[-1]
    for ran in requests_:
        assert ran.code == TIMED_OUT, ran.text
        assert ran.lines[-1].startswith("Gave up after 3s. The operator has not acknowledged")


def test_a_reauthorize_denied_at_google_ends_with_the_denial(stage: Stage) -> None:
    cluster = stage.watched
    authorized_client(cluster, stage.sandbox, "again")
    cluster.wait_condition("googleclients", "again", "Ready", "True", "TokenValid")
    command = start_cli(stage, "reauthorize", "again", "-n", cluster.namespace, "--timeout", "60")
    url = url_from(command, stage.sandbox.url)
    state = dict(parse_qsl(urlsplit(url).query))["state"]

    # Google's redirect after Deny: the state and an error, no code.
    denied = hand_over(cluster, stage.consent_port, {"state": state, "error": "access_denied"})
    assert denied["outcome"] == "denied"
    handed = time.monotonic()
    rest, _ = command.communicate(timeout=30)
    assert command.returncode == DENIED, rest
    assert time.monotonic() - handed < TERMINAL_WITHIN
    verdict = rest.strip().splitlines()[-1]
    assert "(ConsentDenied): consent was denied at Google" in verdict
    assert "The current grant keeps working" in verdict
    assert status_row(stage, cluster, "again")[2:4] == ["True", "TokenValid"]
    assert detail_ready(stage, cluster, "again").endswith("True TokenValid")
    denial = run_cli(stage, "status", "again", "-n", cluster.namespace)
    assert "  last failure:   consent ConsentDenied at " in denial.text, denial.text
    assert "ConsentDenied" in cluster.wait_events("again", "ConsentDenied")
