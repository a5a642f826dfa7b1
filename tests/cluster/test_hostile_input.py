# ruff: noqa: E501 - the table below keeps one case per line
"""Hostile input, case by case: a table of what a namespace user, a hand-edited Secret, the
internet (through the callback) and a misbehaving Google can send, and what must come of it.

One operator serves the whole table (module-scoped, on the real API server and the sandbox):
every object is created up front, so the cases' waits (30 s for a conflict to stay untouched,
60 s for a shared name not to be fought over, 2 minutes of Google's nonsense) overlap. While
all of it goes on, one well-behaved client and its Branch `sibling` keep refreshing.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import secrets as random
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from kubernetes import client
from kubernetes.client import ApiException

from devkit import ControlPlane
from devkit.servers import CallbackServer, SandboxServer
from fixtures.cluster import namespace_name
from fixtures.operator import (
    OWNER,
    PRIVATE_LABELS,
    REPO,
    SCOPES,
    Cluster,
    OperatorProcess,
    branch_spec,
    callback_key,
    free_port,
    wait_for,
)
from google_token_operator import GROUP, VERSION, policy
from google_token_operator.timeutil import parse_rfc3339
from google_token_sandbox.demo_data import OWNER_LOCATION_IDS

ACME_CLIENT_ID = "111-acme.apps.googleusercontent.com"
TWIN_CLIENT_ID = "222-twin.apps.googleusercontent.com"
SECRET = "hostile-suite-client-secret"
# Short tokens for acme (its siblings must be seen refreshing); an hour for twin (a Secret
# shared by name must be seen not rewritten for a minute).
ACME_LIFETIME = 20
CONFLICT_QUIET = 30.0  # a refused target must be untouched this long
SHARED_QUIET = 60.0  # a shared name must not change version this long
GOOGLE_WINDOW = 120.0  # Google's nonsense is counted over this
# What the backoff allows at most in GOOGLE_WINDOW: the shortest (jitter 0) delays fitting,
# plus the call that failed first.
MAX_CALLS_IN_WINDOW = 1 + next(
    n
    for n in range(1, 50)
    if sum(policy.backoff_delay(k, None, 0.0).total_seconds() for k in range(1, n + 1))
    > GOOGLE_WINDOW
)


# -- the world every case looks at -----------------------------------------------------------


@dataclasses.dataclass
class World:
    control_plane: ControlPlane
    cluster: Cluster
    sandbox: SandboxServer
    operator: OperatorProcess
    consent_port: int
    started: float
    callback_url: str = ""
    # Foreign Secrets as they were before anything aimed at them: name -> (data, labels,
    # ownerReferences, resourceVersion).
    targets: dict[str, tuple[Any, ...]] = dataclasses.field(default_factory=dict)
    google_faults_at: float = 0.0
    google_calls_before: dict[str, int] = dataclasses.field(default_factory=dict)
    shared_versions: dict[str, str] = dataclasses.field(default_factory=dict)

    def snapshot(self, name: str) -> tuple[Any, ...]:
        secret = self.cluster.core.read_namespaced_secret(name, self.cluster.namespace)
        meta = secret.metadata
        references = [ref.uid for ref in meta.owner_references or []]
        return (secret.data, meta.labels, references, meta.resource_version, secret.type)

    def wait_until(self, seconds_after_start: float) -> None:
        remaining = self.started + seconds_after_start - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)

    def reason(self, plural: str, name: str, kind: str = "Ready") -> str:
        return str(self.cluster.condition(plural, name, kind).get("reason", ""))


def _put_foreign(cluster: Cluster, name: str, **extra: Any) -> None:
    body = client.V1Secret(
        metadata=client.V1ObjectMeta(name=name, labels=extra.pop("labels", None)),
        string_data=extra.pop("data", {"password": "hunter2"}),
        **extra,
    )
    cluster.core.create_namespaced_secret(cluster.namespace, body)


def _owned_private(
    cluster: Cluster, sandbox: SandboxServer, name: str, client_id: str, **spec: str
) -> None:
    """A GoogleClient with its own OAuth client and a refresh token in its private Secret."""
    cluster.put_secret(f"{name}-oauth", {"client_id": client_id, "client_secret": SECRET})
    body = cluster.create(
        "googleclients", name, {"credentialsSecretRef": {"name": f"{name}-oauth"}, **spec}
    )
    refresh_token = sandbox.state.mint_grant(client_id, OWNER, SCOPES)
    cluster.put_secret(
        f"{name}-google-oauth",
        {"refresh_token": refresh_token, "client_id": client_id, "scopes": " ".join(SCOPES)},
        labels={**PRIVATE_LABELS, "google-token-operator.dev/client": name},
        owner=body,
    )


@contextlib.contextmanager
def self_aim_rule_removed(control_plane: ControlPlane, cluster: Cluster) -> Iterator[None]:
    """The GoogleClient CRD without its rule against a tokenSecretName naming the client's
    own private Secret (as a CRD older than the operator would be), so what the pass checks
    by itself can be seen; crds/ is applied again on the way out (the object stays, as after
    an upgrade)."""
    crd = f"crd/googleclients.{GROUP}"
    rules = "/spec/versions/0/schema/openAPIV3Schema/x-kubernetes-validations"
    found = [
        rule["rule"] for rule in _root_rules(control_plane.kubectl("get", crd, "-o", "json").stdout)
    ]
    (index,) = [i for i, rule in enumerate(found) if "'-google-oauth'" in rule]
    patch = [
        {"op": "test", "path": f"{rules}/{index}/rule", "value": found[index]},
        {"op": "remove", "path": f"{rules}/{index}"},
    ]
    control_plane.kubectl("patch", crd, "--type=json", "-p", json.dumps(patch))
    try:
        wait_for(lambda: _self_aim_accepted(cluster), 30, what="the CRD without the rule")
        yield
    finally:
        control_plane.kubectl("apply", "-f", str(REPO / "crds" / "googleclients.yaml"))
        wait_for(lambda: not _self_aim_accepted(cluster), 30, what="the CRD with the rule")


def _root_rules(crd_json: str) -> list[dict[str, Any]]:
    schema = json.loads(crd_json)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return list(schema.get("x-kubernetes-validations") or [])


def _self_aim_accepted(cluster: Cluster) -> bool:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "GoogleClient",
        "metadata": {"name": "probe", "namespace": cluster.namespace},
        "spec": {"credentialsSecretRef": {"name": "x"}, "tokenSecretName": "probe-google-oauth"},
    }
    try:
        cluster.custom.create_namespaced_custom_object(
            GROUP, VERSION, cluster.namespace, "googleclients", body, dry_run="All"
        )
    except ApiException as error:
        if error.status != 422:
            raise
        return False
    return True


# Google answering nonsense, per OAuth client: name -> (fault, expected Ready reason).
GOOGLE_NONSENSE: dict[str, tuple[dict[str, Any], str]] = {
    "g-zero-lifetime": ({"status": 200, "answer": {"expires_in": 0}}, "GoogleAnswerInvalid"),
    "g-negative-lifetime": ({"status": 200, "answer": {"expires_in": -5}}, "GoogleAnswerInvalid"),
    "g-fractional-lifetime": (
        {"status": 200, "answer": {"expires_in": "3599.5"}},
        "GoogleAnswerInvalid",
    ),
    "g-null-lifetime": ({"status": 200, "answer": {"expires_in": None}}, "GoogleAnswerInvalid"),
    "g-huge-lifetime": ({"status": 200, "answer": {"expires_in": 1e12}}, "GoogleAnswerInvalid"),
    "g-null-token": ({"status": 200, "answer": {"access_token": None}}, "GoogleAnswerInvalid"),
    "g-empty-token": ({"status": 200, "answer": {"access_token": ""}}, "GoogleAnswerInvalid"),
    "g-token-with-spaces": (
        {"status": 200, "answer": {"access_token": "ya29 <script>"}},
        "GoogleAnswerInvalid",
    ),
    "g-wrong-token-type": ({"status": 200, "answer": {"token_type": "mac"}}, "GoogleAnswerInvalid"),
    "g-huge-retry-after": ({"status": 503, "retry_after": "99999999999"}, "RefreshFailing"),
    "g-garbage-retry-after": ({"status": 429, "retry_after": "soon, maybe"}, "RefreshFailing"),
    "g-superscript-retry-after": ({"status": 503, "retry_after": "²"}, "RefreshFailing"),
}


def _client_id(name: str) -> str:
    digits = int(hashlib.sha256(name.encode()).hexdigest(), 16) % 10**12
    return f"{digits:012d}-{name}.apps.googleusercontent.com"


@pytest.fixture(scope="module")
def world(
    control_plane: ControlPlane,
    kube_api: client.ApiClient,
    crds: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    core = client.CoreV1Api(kube_api)
    namespace = namespace_name("hostile-input")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    cluster = Cluster(kube_api, namespace)
    output = tmp_path_factory.mktemp("hostile")
    with SandboxServer() as sandbox:
        state = sandbox.state
        for client_id, lifetime in ((ACME_CLIENT_ID, ACME_LIFETIME), (TWIN_CLIENT_ID, 3599)):
            state.register_client(
                client_id, SECRET, ["http://localhost/cb"], token_lifetime=lifetime
            )
        for name in GOOGLE_NONSENSE:
            state.register_client(
                _client_id(name), SECRET, ["http://localhost/cb"], token_lifetime=ACME_LIFETIME
            )

        # Created while the CRD lacks the rule that refuses it: only the pass stands guard.
        with self_aim_rule_removed(control_plane, cluster):
            _owned_private(
                cluster, sandbox, "selfish", TWIN_CLIENT_ID, tokenSecretName="selfish-google-oauth"
            )

        consent_port = free_port()
        operator = OperatorProcess(
            ["-n", namespace, "--verbose", "--metrics-port", "0", "--liveness-port", "0",
             "--consent-port", str(consent_port)],
            {**os.environ, **sandbox.env, "KUBECONFIG": str(control_plane.kubeconfig),
             "OPERATOR_NAMESPACE": namespace, "PYTHONUNBUFFERED": "1"},
            output / "operator.log",
            (sys.executable, "-m", "google_token_operator"),
        ).start()  # fmt: skip
        try:
            # Foreign Secrets, before anything aims at them.
            _put_foreign(cluster, "app-config")
            _put_foreign(cluster, "app-config-2")
            _put_foreign(cluster, "frozen", immutable=True)
            _put_foreign(
                cluster,
                "tls-cert",
                type="kubernetes.io/tls",
                data={"tls.crt": "not a cert", "tls.key": "not a key"},
            )
            _put_foreign(cluster, "forged-labels", labels=dict(PRIVATE_LABELS))
            # The well-behaved client and its sibling Branch.
            _owned_private(cluster, sandbox, "acme", ACME_CLIENT_ID)
            cluster.create("branches", "sibling", branch_spec(OWNER_LOCATION_IDS[0]))
            _owned_private(cluster, sandbox, "twin", TWIN_CLIENT_ID)
            for name in GOOGLE_NONSENSE:
                _owned_private(cluster, sandbox, name, _client_id(name))

            world = World(control_plane, cluster, sandbox, operator, consent_port, time.monotonic())
            world.targets["selfish-refresh-token"] = (
                (cluster.secret("selfish-google-oauth") or {})["refresh_token"],
            )
            for name in ("app-config", "app-config-2", "frozen", "tls-cert", "forged-labels"):
                world.targets[name] = world.snapshot(name)
            cluster.wait_condition("googleclients", "acme", "Ready", "True", "TokenValid", 60)
            world.targets["acme-oauth"] = world.snapshot("acme-oauth")
            # twin's tokens live an hour: once it has one, its private Secret stays as it is.
            cluster.wait_condition("googleclients", "twin", "Ready", "True", "TokenValid", 60)
            world.targets["twin-google-oauth"] = world.snapshot("twin-google-oauth")

            # Aim at the foreign Secrets; name collisions.
            aims = {
                "b-unrelated": "app-config",
                "b-private": "twin-google-oauth",
                "b-credentials": "acme-oauth",
                "b-immutable": "frozen",
                "b-tls": "tls-cert",
                "b-forged-labels": "forged-labels",
            }
            for branch, target in aims.items():
                cluster.create(
                    "branches",
                    branch,
                    {**branch_spec(OWNER_LOCATION_IDS[1]), "tokenSecretName": target},
                )
            cluster.create(
                "googleclients",
                "thief",
                {
                    "credentialsSecretRef": {"name": "acme-oauth"},
                    "tokenSecretName": "twin-google-oauth",
                },
            )
            cluster.create(
                "googleclients",
                "squatter",
                {"credentialsSecretRef": {"name": "acme-oauth"}, "tokenSecretName": "app-config-2"},
            )
            cluster.create("branches", "twin", branch_spec(OWNER_LOCATION_IDS[0], client="twin"))
            cluster.create(
                "branches",
                "dup-a",
                {**branch_spec(OWNER_LOCATION_IDS[0], client="twin"), "tokenSecretName": "shared"},
            )
            wait_for(lambda: cluster.secret("shared"), 30, what="the first owner of 'shared'")
            cluster.create(
                "branches",
                "dup-b",
                {**branch_spec(OWNER_LOCATION_IDS[1], client="twin"), "tokenSecretName": "shared"},
            )
            for name in ("twin-google-token", "shared"):
                world.shared_versions[name] = world.snapshot(name)[3]

            # Google starts answering nonsense to its clients, once each has a good token.
            for name in GOOGLE_NONSENSE:
                cluster.wait_condition("googleclients", name, "Ready", "True", "TokenValid", 60)
            for name, (fault, _) in GOOGLE_NONSENSE.items():
                state.inject_faults("token", count=1000, client_id=_client_id(name), **fault)
                world.google_calls_before[name] = state.client_calls("token", _client_id(name))
            world.google_faults_at = time.monotonic()
            world.targets["good-tokens"] = tuple(
                (cluster.secret(f"{name}-google-token") or {}).get("access_token")
                for name in GOOGLE_NONSENSE
            )

            key_file = output / "callback-key"
            key_file.write_text(callback_key(cluster))
            with CallbackServer(f"http://127.0.0.1:{consent_port}", key_file) as callback:
                world.callback_url = callback.callback_url
                yield world
        finally:
            operator.stop()
            core.delete_namespace(namespace)


def managed_secret_names(cluster: Cluster) -> set[str]:
    listing = cluster.core.list_namespaced_secret(
        cluster.namespace, label_selector="app.kubernetes.io/managed-by=google-token-operator"
    )
    return {item.metadata.name for item in listing.items}


# -- the table -------------------------------------------------------------------------------

Check = Callable[[World], None]


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    input: str  # what was sent, for a person reading the table
    check: Check


def conflict(resource: str, name: str, target: str) -> Check:
    plural = {"Branch": "branches", "GoogleClient": "googleclients"}[resource]

    def check(world: World) -> None:
        ready = world.cluster.wait_condition(plural, name, "Ready", "False", "SecretConflict", 60)
        assert repr(target) in ready["message"]
        world.cluster.wait_events(name, "SecretConflict")
        world.wait_until(CONFLICT_QUIET)
        assert world.snapshot(target) == world.targets[target], f"{target} was touched"

    return check


def collision(loser_plural: str, loser: str, secret: str) -> Check:
    def check(world: World) -> None:
        world.cluster.wait_condition(loser_plural, loser, "Ready", "False", "SecretConflict", 60)
        world.wait_until(SHARED_QUIET)
        assert world.snapshot(secret)[3] == world.shared_versions[secret], (
            f"{secret} was fought over"
        )

    return check


def google_nonsense(name: str) -> Check:
    def check(world: World) -> None:
        _, reason = GOOGLE_NONSENSE[name]
        world.cluster.wait_condition("googleclients", name, "Ready", "False", reason, 90)
        remaining = world.google_faults_at + GOOGLE_WINDOW - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        calls = world.sandbox.state.client_calls("token", _client_id(name))
        calls -= world.google_calls_before[name]
        print(f"{name}: {calls} token calls in {GOOGLE_WINDOW:.0f} s of nonsense")
        assert 1 <= calls <= MAX_CALLS_IN_WINDOW
        kept = (world.cluster.secret(f"{name}-google-token") or {}).get("access_token")
        assert kept == world.targets["good-tokens"][list(GOOGLE_NONSENSE).index(name)]
        status = (world.cluster.get("googleclients", name) or {})["status"]
        next_try = parse_rfc3339(status["nextRefreshTime"]) - dt.datetime.now(dt.UTC)
        assert next_try <= dt.timedelta(minutes=10, seconds=5)  # Retry-After is capped

    return check


def refused_by_the_api_server(plural: str, name: str, spec: dict[str, Any], field: str) -> Check:
    def check(world: World) -> None:
        with pytest.raises(ApiException) as refused:
            world.cluster.create(plural, name, spec)
        assert refused.value.status == 422
        assert field in str(refused.value.body)

    return check


def consent_api(headers: dict[str, str], body: Any, status: int, outcome: str = "") -> Check:
    def check(world: World) -> None:
        before = managed_secret_names(world.cluster)
        sent = dict(headers)
        if sent.get("Authorization") == "KEY":
            sent["Authorization"] = f"Bearer {callback_key(world.cluster)}"
        data = body if isinstance(body, bytes) else None
        answer = requests.post(
            f"http://127.0.0.1:{world.consent_port}/consent",
            json=None if data is not None else body,
            data=data,
            headers=sent,
            timeout=10,
        )
        assert answer.status_code == status, answer.text
        reply = answer.json()  # always JSON
        if outcome:
            assert reply["outcome"] == outcome
        assert managed_secret_names(world.cluster) == before

    return check


def callback_query(query: dict[str, str], status: int, absent: str = "") -> Check:
    def check(world: World) -> None:
        before = managed_secret_names(world.cluster)
        page = requests.get(world.callback_url, params=query, timeout=10)
        assert page.status_code == status
        if absent:
            assert absent not in page.text
        assert managed_secret_names(world.cluster) == before

    return check


def hand_edited_private(edit: dict[str, str]) -> Check:
    """acme's private Secret edited in place (owner kept): the operator must go on serving."""

    def check(world: World) -> None:
        cluster = world.cluster
        cluster.wait_condition("googleclients", "acme", "Ready", "True", timeout=60)

        def edited() -> bool:
            raw = cluster.core.read_namespaced_secret("acme-google-oauth", cluster.namespace)
            encoded = {k: base64.b64encode(v.encode()).decode() for k, v in edit.items()}
            raw.data = {**raw.data, **encoded}
            try:  # the operator may write it at the same moment: then read it again
                cluster.core.replace_namespaced_secret("acme-google-oauth", cluster.namespace, raw)
            except ApiException as error:
                if error.status != 409:
                    raise
                return False
            return True

        wait_for(edited, 30, what="the hand edit")
        before = (cluster.secret("acme-google-token") or {}).get("access_token")
        wait_for(
            lambda: (cluster.secret("acme-google-token") or {}).get("access_token") != before,
            3 * ACME_LIFETIME,
            what="acme's next token",
        )
        cluster.wait_condition("googleclients", "acme", "Ready", "True", "TokenValid", 30)
        assert "Traceback" not in world.operator.log()

    return check


def sibling_keeps_refreshing(world: World) -> None:
    def expiry() -> dt.datetime:
        return parse_rfc3339((world.cluster.secret("sibling-google-token") or {})["expiry"])

    first = wait_for(lambda: world.cluster.secret("sibling-google-token"), 30, what="sibling")
    assert first
    before = expiry()
    wait_for(lambda: expiry() > before, 3 * ACME_LIFETIME, what="the sibling's next token")
    assert world.reason("branches", "sibling") == "LocationVerified"


def own_private_secret_kept(world: World) -> None:
    """selfish names its own private Secret as tokenSecretName (the CRD rule was not there to
    refuse it): the pass refuses it, and the refresh token stays."""
    cluster = world.cluster
    ready = cluster.wait_condition(
        "googleclients", "selfish", "Ready", "False", "SecretConflict", 60
    )
    assert "spec.tokenSecretName 'selfish-google-oauth'" in ready["message"]
    world.wait_until(CONFLICT_QUIET)
    private = cluster.secret("selfish-google-oauth") or {}
    assert (private.get("refresh_token"),) == world.targets["selfish-refresh-token"]
    assert "token.json" not in private  # no consumer keys written over it
    assert (cluster.get("googleclients", "selfish") or {})["status"].get("tokenSecretName") is None


def forged_status_spares_the_private_secret(world: World) -> None:
    """twin's status names its private Secret as the consumer Secret last written; a restarted
    operator reads that status (a new daemon) and must not delete it as an old consumer Secret."""
    cluster = world.cluster
    before = world.snapshot("twin-google-oauth")
    world.operator.stop()
    cluster.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, cluster.namespace, "googleclients", "twin",
        {"status": {"tokenSecretName": "twin-google-oauth"}},
    )  # fmt: skip
    world.operator.start()

    def status_name() -> str | None:  # what the pass writes once it has judged the old name
        name = ((cluster.get("googleclients", "twin") or {}).get("status") or {}).get(
            "tokenSecretName"
        )
        return name if name != "twin-google-oauth" else None

    assert wait_for(status_name, 60, what="twin's next pass") == "twin-google-token"
    assert world.snapshot("twin-google-oauth") == before


def targets_survive_the_deletion_of_what_aimed_at_them(world: World) -> None:
    cluster = world.cluster
    for branch in ("b-unrelated", "b-private", "b-credentials", "b-immutable", "b-tls",
                   "b-forged-labels"):  # fmt: skip
        cluster.delete("branches", branch)
    for client_name in ("thief", "squatter"):
        cluster.delete("googleclients", client_name)
    wait_for(lambda: cluster.get("googleclients", "thief") is None, 30, what="thief deleted")
    wait_for(lambda: cluster.get("googleclients", "squatter") is None, 30, what="squatter gone")
    time.sleep(3)  # the operator has seen every deletion by now (it had to, to drop finalizers)
    for target in ("app-config", "app-config-2", "frozen", "tls-cert", "forged-labels",
                   "acme-oauth"):  # fmt: skip
        assert world.snapshot(target) == world.targets[target], f"{target} was touched"
    assert world.snapshot("twin-google-oauth") == world.targets["twin-google-oauth"]


def burst_of_random_states_costs_bounded_reads(world: World) -> None:
    """1,000 hand-overs of states nobody issued: the throttle bounds the API server reads."""
    headers = {"Authorization": f"Bearer {callback_key(world.cluster)}"}
    reads_before = _secret_reads(world)
    statuses: dict[int, int] = {}
    with requests.Session() as session:
        for _ in range(1000):
            answer = session.post(
                f"http://127.0.0.1:{world.consent_port}/consent",
                json={"state": random.token_urlsafe(32), "code": "x"},
                headers=headers,
                timeout=10,
            )
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
    reads = _secret_reads(world) - reads_before
    print(f"1000 random states: answers {statuses}, {reads} Secret reads at the API server")
    assert statuses.get(429, 0) >= 900
    assert reads <= 60


def _secret_reads(world: World) -> int:
    plane = world.control_plane
    metrics = requests.get(
        f"{plane.server}/metrics",
        headers={"Authorization": f"Bearer {plane.admin_token}"},
        verify=str(plane.ca_file),
        timeout=10,
    ).text
    total = 0
    for line in metrics.splitlines():
        wanted = ('resource="secrets"', 'verb="GET"', 'scope="resource"')
        if line.startswith("apiserver_request_total{") and all(w in line for w in wanted):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


LONG = "x" * 64
CASES = [
    # Secrets aimed at by a namespace user's Branch or GoogleClient.
    Case("branch-at-unrelated-secret", "Branch tokenSecretName: app-config", conflict("Branch", "b-unrelated", "app-config")),
    Case("branch-at-private-secret", "Branch tokenSecretName: twin-google-oauth", conflict("Branch", "b-private", "twin-google-oauth")),
    Case("branch-at-credentials-secret", "Branch tokenSecretName: acme-oauth", conflict("Branch", "b-credentials", "acme-oauth")),
    Case("branch-at-immutable-secret", "Branch tokenSecretName: an immutable Secret", conflict("Branch", "b-immutable", "frozen")),
    Case("branch-at-tls-secret", "Branch tokenSecretName: a kubernetes.io/tls Secret", conflict("Branch", "b-tls", "tls-cert")),
    Case("branch-at-forged-labels", "Branch at a Secret carrying the managed-by labels, no owner", conflict("Branch", "b-forged-labels", "forged-labels")),
    Case("client-at-another-private", "GoogleClient tokenSecretName: twin-google-oauth", conflict("GoogleClient", "thief", "twin-google-oauth")),
    Case("client-at-unrelated-secret", "GoogleClient tokenSecretName: app-config-2", conflict("GoogleClient", "squatter", "app-config-2")),
    Case("client-at-its-own-private-no-crd-rule", "GoogleClient selfish tokenSecretName: selfish-google-oauth, CRD rule removed", own_private_secret_kept),
    Case("branch-named-like-its-client", "Branch twin of GoogleClient twin", collision("branches", "twin", "twin-google-token")),
    Case("two-branches-one-name", "Branches dup-a and dup-b, both tokenSecretName: shared", collision("branches", "dup-b", "shared")),
    Case("siblings-unaffected", "(all of the above, at once)", sibling_keeps_refreshing),
    # Google's answers.
    *(Case(f"google-{name[2:]}", f"token endpoint: {fault}", google_nonsense(name)) for name, (fault, _) in GOOGLE_NONSENSE.items()),
    # Specs the API server refuses, with the field named.
    Case("name-too-long", "a Branch named with 64 characters", refused_by_the_api_server("branches", LONG, branch_spec(OWNER_LOCATION_IDS[0]), "metadata.name")),
    Case("refresh-before-overflow", "refreshBefore: 99999999999h", refused_by_the_api_server("googleclients", "overflow", {"credentialsSecretRef": {"name": "x"}, "refreshBefore": "99999999999h"}, "refreshBefore")),
    Case("account-id-with-prefix", "accountId: accounts/1", refused_by_the_api_server("branches", "prefixed", {**branch_spec(OWNER_LOCATION_IDS[0]), "accountId": "accounts/1"}, "accountId")),
    Case("location-id-path", "locationId: ../../x", refused_by_the_api_server("branches", "traversal", {**branch_spec(OWNER_LOCATION_IDS[0]), "locationId": "../../x"}, "locationId")),
    Case("secret-name-invalid", "tokenSecretName: Bad_Name", refused_by_the_api_server("branches", "badname", {**branch_spec(OWNER_LOCATION_IDS[0]), "tokenSecretName": "Bad_Name"}, "tokenSecretName")),
    Case("allowed-account-not-email", "allowedAccounts: [not-an-email]", refused_by_the_api_server("googleclients", "pinned", {"credentialsSecretRef": {"name": "x"}, "allowedAccounts": ["not-an-email"]}, "allowedAccounts")),
    Case("hosted-domain-invalid", "hostedDomain: EXAMPLE..com", refused_by_the_api_server("googleclients", "domained", {"credentialsSecretRef": {"name": "x"}, "hostedDomain": "EXAMPLE..com"}, "hostedDomain")),
    Case("scope-not-google", "scopes: [http://evil.example/scope]", refused_by_the_api_server("googleclients", "scoped", {"credentialsSecretRef": {"name": "x"}, "scopes": ["http://evil.example/scope"]}, "scopes")),
    Case("client-at-its-own-private", "GoogleClient self-aimed tokenSecretName: self-aimed-google-oauth", refused_by_the_api_server("googleclients", "self-aimed", {"credentialsSecretRef": {"name": "x"}, "tokenSecretName": "self-aimed-google-oauth"}, "spec.tokenSecretName: Forbidden: must not be self-aimed-google-oauth, the private Secret of this GoogleClient")),
    Case("redirect-uri-with-query", "redirectURI: https://x/cb?steal=1", refused_by_the_api_server("googleclients", "redirected", {"credentialsSecretRef": {"name": "x"}, "redirectURI": "https://x/cb?steal=1"}, "redirectURI")),
    # The consent API: only the callback, only JSON, only short strings.
    Case("consent-api-no-key", "POST /consent without Authorization", consent_api({}, {"state": "s"}, 401)),
    Case("consent-api-wrong-key", "POST /consent with another key", consent_api({"Authorization": "Bearer nope"}, {"state": "s"}, 401)),
    Case("consent-api-non-ascii-key", "POST /consent with a key of non-ASCII characters", consent_api({"Authorization": "Bearer clé"}, {"state": "s"}, 401)),
    Case("consent-api-basic-auth", "POST /consent with Basic auth", consent_api({"Authorization": "Basic dXNlcjpwYXNz"}, {"state": "s"}, 401)),
    Case("consent-api-not-json", "POST /consent with a form body", consent_api({"Authorization": "KEY"}, b"state=s&code=c", 400)),
    Case("consent-api-array", "POST /consent with a JSON array", consent_api({"Authorization": "KEY"}, ["state"], 400)),
    Case("consent-api-number-state", 'POST /consent {"state": 42}', consent_api({"Authorization": "KEY"}, {"state": 42}, 200, "invalid_state")),
    Case("consent-api-long-state", "POST /consent with a 10 kB state", consent_api({"Authorization": "KEY"}, {"state": "s" * 10_000}, 200, "invalid_state")),
    Case("consent-api-huge-body", "POST /consent with 1 MB", consent_api({"Authorization": "KEY"}, b"{" + b" " * 1_000_000, 413)),
    Case("consent-api-unknown-state", "POST /consent with a state nobody issued", consent_api({"Authorization": "KEY"}, {"state": "never-issued", "code": "c"}, 200, "invalid_state")),
    Case("consent-api-no-state", "POST /consent {}", consent_api({"Authorization": "KEY"}, {}, 200, "invalid_state")),
    # Callback queries from the internet.
    Case("callback-no-state", "GET /oauth2/callback?code=c", callback_query({"code": "c"}, 400)),
    Case("callback-unknown-state", "GET /oauth2/callback?state=unknown&code=c", callback_query({"state": "unknown", "code": "c"}, 400)),
    Case("callback-script-in-code", "GET /oauth2/callback with <script> in code and state", callback_query({"state": "<script>alert(1)</script>", "code": "<script>x</script>"}, 400, "<script>")),
    Case("callback-denied-unknown", "GET /oauth2/callback?error=access_denied&state=unknown", callback_query({"state": "unknown", "error": "access_denied"}, 400)),
    Case("callback-long-state", "GET /oauth2/callback with a 4 kB state", callback_query({"state": "s" * 4000, "code": "c"}, 400)),
    Case("burst-of-random-states", "1,000 hand-overs of random states", burst_of_random_states_costs_bounded_reads),
    # The private Secret edited by hand: the pass repairs it from Google, never crashes.
    Case("private-bad-expiry", "private Secret expiry: not-a-time", hand_edited_private({"expiry": "not-a-time"})),
    Case("private-bad-issued-at", "private Secret issued_at: 2026-13-45", hand_edited_private({"issued_at": "2026-13-45T99:00:00Z"})),
    Case("private-expiry-before-issue", "private Secret expiry before issued_at", hand_edited_private({"expiry": "2000-01-01T00:00:00Z"})),
    Case("private-huge-expiry", "private Secret expiry: year 9999", hand_edited_private({"expiry": "9999-12-31T23:59:59Z"})),
    Case("private-issued-at-year-1", "private Secret issued_at: year 1, an hour east of UTC", hand_edited_private({"issued_at": "0001-01-01T00:00:00+01:00"})),
    # A forged status read by a restarted operator (after everything that counts time).
    Case("forged-status-at-private", "status.tokenSecretName: twin-google-oauth, then a restart", forged_status_spares_the_private_secret),
    # Last: everything aimed at a foreign Secret deleted; the targets are still untouched.
    Case("targets-survive-deletion", "delete every Branch/GoogleClient that aimed at a Secret", targets_survive_the_deletion_of_what_aimed_at_them),
]  # fmt: skip


def test_the_table_has_forty_cases_or_more() -> None:
    assert len(CASES) >= 40
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_input(world: World, case: Case) -> None:
    case.check(world)
    assert world.operator.running, "the operator died"


def test_no_secret_reached_the_log(world: World) -> None:
    log = world.operator.log()
    for secret in world.sandbox.state.issued_secrets() | {SECRET, callback_key(world.cluster)}:
        assert secret not in log
