"""The product as users run it, on a real node: `kubectl apply -k` of the node overlay (production
plus the sandbox Google), the examples, and what only pods show — probes, Pod Security, Services,
the kubelet's Secret volumes, a replaced leader pod, garbage collection by ownerReferences.

The tests run in file order and build on each other (one node, one install): consent first,
then the consumer, a refresh reaching the consumer's file, the leader's pod deleted, and last
the GoogleClient deleted with the operator scaled to zero. Everything is asserted through what
a user sees: pods, conditions, Secrets, files inside pods, kubectl.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from node_support import (
    CALLBACK,
    NODE_DNS_POLICY,
    OPERATOR_NS,
    Measurements,
    PodReader,
    SecretWatch,
    allow_node_dns,
    condition,
    consent_in_chromium,
    core_api,
    get,
    never_expired,
    next_token_in_file,
    operator_pods,
    python_in_pod,
    reading_token_file,
    ready,
    ready_replicas,
    wait_until,
    watching,
)

from devkit.node import KUBERNETES_SERVICE_IP, Node

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = REPO / "manifests" / "overlays"
EXAMPLES_NS = "reviews-demo"
OPERATOR = "google-token-operator"
CLIENT = "acme"
BRANCH_SECRET = "old-town-google-token"
FINALIZER = "google-token-operator.dev/finalizer"
# docs/design/2026-11-26-own-lease-election.md: a standby leads at most lease + 2 x retry = 19 s
# after the leader stopped renewing; a leader stopped cleanly releases the Lease, and a standby
# then leads within one retry (2 s).
TAKEOVER_BOUND_SECONDS = 19.0


@pytest.fixture(scope="module")
def core(product: Node) -> Iterator[client.CoreV1Api]:
    with core_api(product) as api:
        yield api


@pytest.fixture(scope="module")
def branch_secret_watch(core: client.CoreV1Api) -> Iterator[SecretWatch]:
    with watching(core, EXAMPLES_NS, BRANCH_SECRET) as watcher:
        yield watcher


def test_the_node_overlay_differs_from_production_only_where_documented(node: Node) -> None:
    def render(overlay: str) -> dict[tuple[str, str], Any]:
        docs = yaml.safe_load_all(node.kubectl("kustomize", str(OVERLAYS / overlay)).stdout)
        return {(d["kind"], d["metadata"]["name"]): d for d in docs}

    production, on_node = render("production"), render("node")
    # Added: the sandbox Google (a Deployment and its Service); nothing removed.
    assert set(on_node) - set(production) == {
        ("Deployment", "google-sandbox"),
        ("Service", "google-sandbox"),
    }
    assert set(production) <= set(on_node)
    changed = {key for key in production if production[key] != on_node[key]}
    assert changed == {("Deployment", OPERATOR)}
    prod_operator = production["Deployment", OPERATOR]["spec"]["template"]["spec"]
    node_operator = on_node["Deployment", OPERATOR]["spec"]["template"]["spec"]
    prod_container, node_container = prod_operator["containers"][0], node_operator["containers"][0]
    # The pod spec is the same but for the container's image and environment.
    assert {k: v for k, v in prod_operator.items() if k != "containers"} == {
        k: v for k, v in node_operator.items() if k != "containers"
    }
    assert {k for k in prod_container if prod_container[k] != node_container.get(k)} == {
        "image",
        "env",
    }
    prod_env = {e["name"]: e.get("value") for e in prod_container["env"]}
    node_env = {e["name"]: e.get("value") for e in node_container["env"]}
    differing = {name for name in node_env if prod_env.get(name) != node_env[name]}
    assert differing == {"CALLBACK_URL", "CALLBACK_IMAGE"} | {
        name for name in node_env if name.startswith("GOOGLE_")
    }
    assert node_env["CALLBACK_IMAGE"] == node_container["image"] == "google-token-operator:dev"


def test_both_operator_replicas_ready_under_restricted_pod_security(product: Node) -> None:
    namespace = get(product, "namespace", OPERATOR_NS)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    pods = operator_pods(product)
    assert len(pods) == 2 and all(ready(pod) for pod in pods)
    for pod in pods:
        # The probes passed on the ports the manifests name, in the image's own user.
        status = pod["status"]["containerStatuses"][0]
        assert status["ready"] and status["restartCount"] == 0, status
        assert status["image"].endswith("google-token-operator:dev")
    # Enforced, not only labelled: a pod that is not "restricted" (no securityContext) is
    # refused.
    refused = product.kubectl(
        "run",
        "-n",
        OPERATOR_NS,
        "not-restricted",
        "--image=localhost/gto-python:3.11-bookworm",
        check=False,
    )
    assert refused.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr


def test_consent_in_chromium_through_the_callback_pod(
    product: Node, measurements: Measurements, test_output: Path
) -> None:
    product.kubectl("apply", "-k", str(OVERLAYS / "node-examples"))
    url = wait_until(
        lambda: (
            ((get(product, "googleclient", CLIENT, "-n", EXAMPLES_NS) or {}).get("status") or {})
            .get("authorization", {})
            .get("url")
        ),
        60,
        "the consent URL in status.authorization.url",
    )
    # The operator runs the callback Deployment while consent is pending.
    started = time.monotonic()
    wait_until(lambda: ready_replicas(product, CALLBACK) >= 1, 120, "the callback pod Ready")
    measurements.record("callback pod Ready after the consent URL", time.monotonic() - started, "s")
    callback = get(product, "deployment", CALLBACK, "-n", OPERATOR_NS)
    assert callback["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "google-token-operator:dev"
    )
    text = consent_in_chromium(product, url, test_output)
    assert f"GoogleClient {EXAMPLES_NS}/{CLIENT}" in text
    assert "owner@example.com" in text

    def authorized() -> bool:
        obj = get(product, "googleclient", CLIENT, "-n", EXAMPLES_NS)
        return (
            condition(obj, "Authorized").get("status") == "True"
            and condition(obj, "Ready").get("status") == "True"
        )

    wait_until(authorized, 60, "GoogleClient acme Authorized and Ready")
    wait_until(
        lambda: (
            condition(get(product, "branch", "old-town", "-n", EXAMPLES_NS), "Ready").get("status")
            == "True"
        ),
        60,
        "Branch old-town Ready",
    )


def test_the_consumer_pod_reads_reviews_with_the_mounted_token(product: Node) -> None:
    def fetched() -> str | None:
        logs = product.kubectl(
            "logs", "-n", EXAMPLES_NS, "deployment/review-fetcher", check=False
        ).stdout
        return logs if re.search(r"^\d+ reviews, token valid until ", logs, re.M) else None

    logs = wait_until(fetched, 120, "review-fetcher's first successful fetch")
    assert "fetching reviews failed" not in logs
    # The sandbox's Old Town location has four reviews.
    assert re.search(r"^4 reviews, token valid until ", logs, re.M), logs


# Runs inside a pod: one TCP connection attempt (1 s) per target of argv[1] ({name: [host,
# port]}) and one lookup of the kubernetes Service's name (2 s); prints {name: reached}.
PROBE = """
import concurrent.futures, json, os, socket, sys
found = {}
for name, (host, port) in json.loads(sys.argv[1]).items():
    try:
        socket.create_connection((host, port), timeout=1).close()
        found[name] = True
    except OSError:
        found[name] = False
lookup = concurrent.futures.ThreadPoolExecutor(1).submit(
    socket.gethostbyname, "kubernetes.default.svc.cluster.local."
)
try:
    found["dns"] = lookup.result(timeout=2) == "10.0.0.1"
except Exception:
    found["dns"] = False
print(json.dumps(found), flush=True)
os._exit(0)  # a lookup still waiting must not hold the exit
"""
# Policies take effect once kube-router has synced them (a second or two after a change).
POLICY_SYNC_BOUND_SECONDS = 30.0


def reaches_eventually(
    node: Node,
    namespace: str,
    pod: str,
    targets: dict[str, tuple[str, int]],
    expected: dict[str, bool],
) -> None:
    """Probe from inside ``pod`` until what it reaches is ``expected`` (the policies synced)."""
    seen: list[dict[str, bool]] = []

    def probe() -> bool:
        result = node.kubectl(
            *python_in_pod(namespace, pod, PROBE, json.dumps(targets)), check=False
        )
        seen.append(json.loads(result.stdout) if result.returncode == 0 else {})
        return seen[-1] == expected

    wait_until(
        probe,
        POLICY_SYNC_BOUND_SECONDS,
        f"{namespace}/{pod} to reach {expected}",
        describe=lambda: str(seen[-1] if seen else None),
    )


def ready_pod(node: Node, namespace: str, selector: str) -> str:
    """The name of a Ready pod that ``selector`` selects (waits for one)."""

    def found() -> str | None:
        listed = get(node, "pods", "-n", namespace, "-l", selector) or {"items": []}
        return next((p["metadata"]["name"] for p in listed["items"] if ready(p)), None)

    return str(wait_until(found, 120, f"a Ready pod {selector} in {namespace}"))


def cluster_ip(node: Node, name: str) -> tuple[str, int]:
    service = get(node, "service", name, "-n", OPERATOR_NS)
    return service["spec"]["clusterIP"], int(service["spec"]["ports"][0]["port"])


def test_a_tenant_pod_cannot_reach_the_consent_api(
    product: Node, measurements: Measurements
) -> None:
    started = time.monotonic()
    consent_ip, _ = cluster_ip(product, OPERATOR)
    # Metrics are open to every namespace: the tenant's network works, only 8082 is closed.
    reaches_eventually(
        product,
        EXAMPLES_NS,
        ready_pod(product, EXAMPLES_NS, "app.kubernetes.io/name=review-fetcher"),
        {"consent API": (consent_ip, 8082), "operator metrics": (consent_ip, 9090)},
        {"consent API": False, "operator metrics": True, "dns": True},
    )
    measurements.record("network policy probes from a tenant pod", time.monotonic() - started, "s")


def test_the_callback_pod_reaches_only_the_consent_api_and_dns(
    product: Node, measurements: Measurements
) -> None:
    started = time.monotonic()
    # A second GoogleClient, never consented: the operator runs its callback pod meanwhile.
    pending = {
        "apiVersion": "google-token-operator.dev/v1",
        "kind": "GoogleClient",
        "metadata": {"name": "netpol-probe", "namespace": EXAMPLES_NS},
        "spec": {
            "credentialsSecretRef": {"name": "acme-oauth"},
            "scopes": ["https://www.googleapis.com/auth/business.manage"],
        },
    }
    product.kubectl("apply", "-f", "-", input=json.dumps(pending))
    try:
        pod = ready_pod(product, OPERATOR_NS, f"app.kubernetes.io/name={CALLBACK}")
        operator_pod = operator_pods(product)[0]
        targets = {
            "consent API": (cluster_ip(product, OPERATOR)[0], 8082),
            "API server": (KUBERNETES_SERVICE_IP, 443),
            "sandbox Google": cluster_ip(product, "google-sandbox"),
            # Open to every namespace's pods, but not among the callback's egress.
            "another pod": (operator_pod["status"]["podIP"], 9090),
        }
        confined = {
            "consent API": True,
            "dns": True,
            "API server": False,
            "sandbox Google": False,
            "another pod": False,
        }
        reaches_eventually(product, OPERATOR_NS, pod, targets, confined)
        measurements.record(
            "network policy probes from the callback pod", time.monotonic() - started, "s"
        )
        # The probe can fail: without the callback's policies (the manifests' and the node's DNS
        # stand-in), the same pod reaches everything.
        product.kubectl("delete", "networkpolicy", CALLBACK, NODE_DNS_POLICY, "-n", OPERATOR_NS)
        try:
            reaches_eventually(product, OPERATOR_NS, pod, targets, dict.fromkeys(confined, True))
        finally:
            product.kubectl("apply", "-k", str(OVERLAYS / "node"))
            allow_node_dns(product, OPERATOR_NS)
        reaches_eventually(product, OPERATOR_NS, pod, targets, confined)
    finally:
        product.kubectl("delete", "googleclient", "netpol-probe", "-n", EXAMPLES_NS)


@pytest.fixture(scope="module")
def reader(product: Node) -> Iterator[PodReader]:
    with reading_token_file(product, EXAMPLES_NS, "review-fetcher") as running:
        yield running


def test_a_refresh_reaches_the_file_inside_the_consumer_pod(
    reader: PodReader, branch_secret_watch: SecretWatch, measurements: Measurements
) -> None:
    next_token_in_file(reader, branch_secret_watch, time.time(), measurements)
    never_expired(reader, templated=True)


def test_deleting_the_leader_pod_hands_over_without_an_expired_token(
    product: Node,
    reader: PodReader,
    branch_secret_watch: SecretWatch,
    measurements: Measurements,
) -> None:
    def lease() -> dict[str, Any]:
        return dict(get(product, "lease", OPERATOR, "-n", OPERATOR_NS)["spec"])

    # The identity is "<hostname>-<pid>"; a pod's hostname is its name.
    holder = lease()["holderIdentity"]
    pods = {pod["metadata"]["name"] for pod in operator_pods(product)}
    leader = next(name for name in pods if holder.startswith(f"{name}-"))
    (standby,) = pods - {leader}

    deleted_at = time.time()
    product.kubectl("delete", "pod", "-n", OPERATOR_NS, leader, "--wait=false")

    def new_leader() -> str | None:
        identity = str(lease().get("holderIdentity") or "")
        live = {pod["metadata"]["name"] for pod in operator_pods(product)} - {leader}
        return next((name for name in live if identity.startswith(f"{name}-")), None)

    successor = wait_until(
        new_leader,
        60,
        "another operator pod to hold the Lease",
        interval=0.1,
        describe=lambda: (
            f"Lease {lease()}, pods {[p['metadata']['name'] for p in operator_pods(product)]}"
        ),
    )
    takeover = time.time() - deleted_at
    # The standby retries every 2 s; the Deployment's replacement for the deleted pod starts
    # within seconds too, and may win the race for a released Lease.
    who = "the standby" if successor == standby else "the replacement pod"
    measurements.record(f"leader pod deleted -> {who} holds the Lease", takeover, "s")
    assert takeover <= TAKEOVER_BOUND_SECONDS

    def replaced() -> bool:
        current = operator_pods(product)
        names = {pod["metadata"]["name"] for pod in current}
        return leader not in names and len(current) == 2 and all(ready(p) for p in current)

    wait_until(replaced, 180, "the Deployment's new pod Ready beside the new leader")
    measurements.record(
        "leader pod deleted -> two Ready replicas again", time.time() - deleted_at, "s"
    )
    # The new leader refreshes on time, and the consumer never read an expired token.
    next_token_in_file(reader, branch_secret_watch, deleted_at, measurements)
    never_expired(reader, templated=True)


def test_garbage_collection_removes_a_deleted_clients_secrets(
    product: Node, measurements: Measurements
) -> None:
    scaled = time.monotonic()
    product.kubectl("scale", "deployment", OPERATOR, "-n", OPERATOR_NS, "--replicas=0")
    wait_until(lambda: not operator_pods(product), 120, "no operator pod")
    measurements.record("operator scaled to 0 -> its pods gone", time.monotonic() - scaled, "s")
    client_object = get(product, "googleclient", CLIENT, "-n", EXAMPLES_NS)
    owned = [f"{CLIENT}-google-oauth", f"{CLIENT}-google-token"]
    for name in owned:
        secret = get(product, "secret", name, "-n", EXAMPLES_NS)
        owners = secret["metadata"]["ownerReferences"]
        assert [o["uid"] for o in owners] == [client_object["metadata"]["uid"]]

    product.kubectl("delete", "googleclient", CLIENT, "-n", EXAMPLES_NS, "--wait=false")
    # With no operator, its finalizer holds the object; the Secrets are still there.
    pending = get(product, "googleclient", CLIENT, "-n", EXAMPLES_NS)
    assert pending["metadata"]["deletionTimestamp"]
    assert FINALIZER in pending["metadata"]["finalizers"]
    assert all(get(product, "secret", name, "-n", EXAMPLES_NS) for name in owned)
    # What a user does once the operator is uninstalled: drop the finalizer. The
    # garbage collector then deletes the Secrets through their ownerReferences.
    released = time.monotonic()
    product.kubectl(
        "patch",
        "googleclient",
        CLIENT,
        "-n",
        EXAMPLES_NS,
        "--type=json",
        "-p",
        json.dumps([{"op": "remove", "path": "/metadata/finalizers"}]),
    )
    wait_until(
        lambda: all(get(product, "secret", name, "-n", EXAMPLES_NS) is None for name in owned),
        120,
        "the garbage collector to delete the client's Secrets",
    )
    measurements.record(
        "finalizer removed -> owned Secrets garbage-collected", time.monotonic() - released, "s"
    )
    # The Branch's Secret belongs to the Branch, which still exists.
    assert get(product, "secret", BRANCH_SECRET, "-n", EXAMPLES_NS) is not None
