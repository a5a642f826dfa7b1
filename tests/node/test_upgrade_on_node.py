"""An upgrade from the previous release (hack/devkit/releases.py) to the tree under test, and a
rollback to it, on a real node, as a user makes them.

The previous release is installed from its own tree (`git archive` of its commit): its operator
image built from its own Dockerfile and sources, its own node overlay and examples (v1alpha1
only). The sandbox Google is this tree's throughout: it stands in for Google, which an upgrade
does not restart, and both trees render its Deployment the same, so no apply rolls it and the
grants it holds survive.

The tests run in file order and build on each other: the previous release consented and
refreshing; `kubectl apply -k manifests/overlays/node` over it, with what a user must be able to
count on (no new consent, the refresh token kept, the consumer's mounted token never expired —
read inside its pod all along —, Google called only as scheduled, objects read as v1);
`migrate-storage` leaving `storedVersions: ["v1"]`; last, the previous release's manifests
applied again without its CRDs (docs/guides/upgrading.md, "Rolling back"), its operator still
working through v1alpha1.

The node's tokens live 5 minutes (the node overlay's sandbox), so production's promise of 10
minutes left of a 1 h token is measured at that scale: a sixth of the lifetime, 50 s.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from node_support import (
    CALLBACK,
    OPERATOR_NS,
    REFRESH_WAIT_SECONDS,
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
    reading_token_file,
    ready,
    ready_replicas,
    wait_until,
    watching,
)

from devkit import images
from devkit.node import Node
from devkit.releases import PREVIOUS_RELEASE, previous_release_tree
from fixtures.operator import OUTPUT
from google_token_operator.policy import PROMISED_REMAINING_FRACTION

REPO = Path(__file__).resolve().parents[2]
GROUP = "google-token-operator.dev"
OPERATOR = "google-token-operator"
SANDBOX = "google-sandbox"
CURRENT_IMAGE = images.OPERATOR.node_name
PREVIOUS_IMAGE = images.release_image(PREVIOUS_RELEASE).node_name
EXAMPLES_NS = "reviews-demo"
CLIENT = "acme"
PRIVATE_SECRET = f"{CLIENT}-google-oauth"
CLIENT_SECRET = f"{CLIENT}-google-token"
CONSUMER = "review-fetcher"  # the examples' consumer
CONSUMER_SECRET = "old-town-google-token"  # the Secret it mounts
PLURALS = {"GoogleClient": "googleclients", "Branch": "branches"}
TOKEN_LIFETIME_SECONDS = 300.0  # the node overlay's sandbox
PROMISE_SECONDS = TOKEN_LIFETIME_SECONDS * PROMISED_REMAINING_FRACTION
# node-examples' refreshBefore: half the lifetime, the policy's cap, so the jitter adds nothing.
REFRESH_BEFORE_SECONDS = 150.0
# When a refresh is seen in the watch, from its due time: a late timer and the watch's delay.
REFRESH_LATENESS_RANGE = (-5.0, 15.0)
# The examples' consumer calls this every 5 minutes; every other call is the operator's.
CONSUMER_ENDPOINT = "reviews.list"
ROLLOUT_TIMEOUT_SECONDS = 180.0
REFRESH_REQUEST = f"{GROUP}/refresh-requested-at"


# --- the two releases' manifests ----------------------------------------------------------------


def previous_manifests(node: Node, overlay: str) -> list[dict[str, Any]]:
    """An overlay of the previous release as its own tree renders it; the operator (and so its
    callback pods) on the previous release's image."""
    tree = previous_release_tree()
    rendered = node.kubectl("kustomize", str(tree / "manifests" / "overlays" / overlay)).stdout
    docs = [doc for doc in yaml.safe_load_all(rendered) if doc]
    for doc in docs:
        if (doc["kind"], doc["metadata"]["name"]) == ("Deployment", OPERATOR):
            [operator] = doc["spec"]["template"]["spec"]["containers"]
            operator["image"] = PREVIOUS_IMAGE
            for entry in operator["env"]:
                if entry["name"] == "CALLBACK_IMAGE":
                    entry["value"] = PREVIOUS_IMAGE
    return docs


def sandbox_deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    [found] = [
        d for d in docs if d and (d["kind"], d["metadata"]["name"]) == ("Deployment", SANDBOX)
    ]
    return found


def apply(node: Node, docs: list[dict[str, Any]]) -> None:
    listed = {"apiVersion": "v1", "kind": "List", "items": docs}
    node.kubectl("apply", "-f", "-", input=json.dumps(listed))


def rolled_out(node: Node, image: str) -> float:
    """Wait until both operator replicas run ``image``, Ready, and no pod of another image is
    left; the seconds it took."""
    started = time.monotonic()

    def images_of_pods() -> list[str]:
        return [pod["spec"]["containers"][0]["image"] for pod in operator_pods(node)]

    wait_until(
        lambda: images_of_pods() == [image, image] and all(map(ready, operator_pods(node))),
        ROLLOUT_TIMEOUT_SECONDS,
        f"both operator replicas Ready on {image}, alone",
        describe=lambda: str(images_of_pods()),
    )
    return time.monotonic() - started


# --- what the test observes ---------------------------------------------------------------------


def sandbox_counts(node: Node) -> dict[str, int]:
    """The sandbox Google's calls so far, per endpoint (its control API, through its Service)."""
    service = get(node, "service", SANDBOX, "-n", OPERATOR_NS)["spec"]
    url = f"http://{service['clusterIP']}:{service['ports'][0]['port']}/_sandbox/counts"
    with urllib.request.urlopen(url, timeout=10) as answer:
        return {str(key): int(value) for key, value in json.load(answer).items()}


def operator_calls(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """The calls made between two counts, per endpoint, but the consumer's."""
    return {
        endpoint: count - before.get(endpoint, 0)
        for endpoint, count in after.items()
        if endpoint != CONSUMER_ENDPOINT and count != before.get(endpoint, 0)
    }


def total(calls: dict[str, int]) -> int:
    """All calls; "token.<grant type>" counts a part of "token" again."""
    return sum(count for endpoint, count in calls.items() if not endpoint.startswith("token."))


def longest_below(tokens: list[tuple[float, float]], until: float, threshold: float) -> float:
    """The longest time a holder of tokens (when each arrived, when it expires; in order) held
    one with less than ``threshold`` seconds left, up to ``until``."""
    ends = [arrived for arrived, _ in tokens[1:]] + [until]
    return max(
        max(0.0, end - (expires - threshold))
        for (_, expires), end in zip(tokens, ends, strict=True)
    )


def in_api(watcher: SecretWatch) -> list[tuple[float, float]]:
    return sorted((watcher.seen[token], watcher.expiry[token]) for token in watcher.seen)


def in_file(reader: PodReader) -> list[tuple[float, float]]:
    """Exact to the reader's poll (0.2 s): a token's expiry is known from any record of it, and
    it stays in the file until the first record of the next one."""
    records = reader.records()
    return [
        (record["t"], record["t"] + record["left"])
        for i, record in enumerate(records)
        if i == 0 or record["token"] != records[i - 1]["token"]
    ]


# The private Secret's entries that change with each refresh (it keeps the current access
# token too); everything else, the refresh token above all, must survive unchanged.
REFRESHED_ENTRIES = frozenset({"access_token", "issued_at", "expiry"})


def grant(node: Node) -> dict[str, str]:
    """The private Secret's lasting entries (the refresh token, the grant's scopes, ...)."""
    data = get(node, "secret", PRIVATE_SECRET, "-n", EXAMPLES_NS)["data"]
    assert data.get("refresh_token"), "the private Secret holds no refresh token"
    return {key: value for key, value in data.items() if key not in REFRESHED_ENTRIES}


def read_as(node: Node, version: str, kind: str, name: str) -> dict[str, Any]:
    found = get(node, f"{PLURALS[kind]}.{version}.{GROUP}", name, "-n", EXAMPLES_NS)
    assert found is not None, f"{kind} {name} not readable as {version}"
    assert found["apiVersion"] == f"{GROUP}/{version}"
    return dict(found)


def stored_versions(node: Node) -> dict[str, list[str]]:
    return {
        plural: list(get(node, "crd", f"{plural}.{GROUP}")["status"]["storedVersions"])
        for plural in PLURALS.values()
    }


def all_ready(node: Node) -> bool:
    objects = [get(node, "googleclient", CLIENT, "-n", EXAMPLES_NS)]
    objects += (get(node, "branches", "-n", EXAMPLES_NS) or {"items": []})["items"]
    return len(objects) == 3 and all(
        condition(obj, "Ready").get("status") == "True" for obj in objects
    )


def migrate_storage(node: Node) -> str:
    """`google-token-operator migrate-storage` as a user runs it, with the admin's kubeconfig."""
    result = subprocess.run(
        [sys.executable, "-m", "google_token_operator", "migrate-storage"],
        env={**os.environ, "KUBECONFIG": str(node.kubeconfig)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


# --- fixtures: one install, watched from consent to rollback ------------------------------------


@pytest.fixture(scope="module")
def previous_release(node: Node, measurements: Measurements) -> Node:
    """The previous release's image (built once per commit) imported, its node overlay applied;
    both replicas Ready."""
    started = time.monotonic()
    archive = images.build_release_image(previous_release_tree(), PREVIOUS_RELEASE)
    node.ctr("images", "import", str(archive))
    install = previous_manifests(node, "node")
    # The sandbox (Google) must outlive the upgrade and the rollback with its grants: both
    # releases render its Deployment the same, so neither apply restarts it.
    current = node.kubectl("kustomize", str(REPO / "manifests" / "overlays" / "node")).stdout
    assert sandbox_deployment(install) == sandbox_deployment(list(yaml.safe_load_all(current)))
    apply(node, install)
    allow_node_dns(node, OPERATOR_NS)
    rolled_out(node, PREVIOUS_IMAGE)
    wait_until(lambda: ready_replicas(node, SANDBOX) == 1, 120, "the sandbox Ready")
    measurements.record(
        "previous release: image found or built, installed, both replicas Ready",
        time.monotonic() - started,
        "s",
    )
    return node


@pytest.fixture(scope="module")
def consented(previous_release: Node) -> dict[tuple[str, str], Any]:
    """The previous release's examples applied (v1alpha1) and consented in Chromium (its
    screenshots in test-output); their GoogleClient's and Branches' specs, by (kind, name)."""
    node = previous_release
    screenshots = OUTPUT / "node-upgrade-consent"
    shutil.rmtree(screenshots, ignore_errors=True)
    screenshots.mkdir(parents=True)
    examples = previous_manifests(node, "node-examples")
    apply(node, examples)
    url = wait_until(
        lambda: (
            ((get(node, "googleclient", CLIENT, "-n", EXAMPLES_NS) or {}).get("status") or {})
            .get("authorization", {})
            .get("url")
        ),
        60,
        "the consent URL in status.authorization.url",
    )
    wait_until(lambda: ready_replicas(node, CALLBACK) >= 1, 120, "the callback pod Ready")
    callback = get(node, "deployment", CALLBACK, "-n", OPERATOR_NS)
    assert callback["spec"]["template"]["spec"]["containers"][0]["image"] == PREVIOUS_IMAGE
    assert f"GoogleClient {EXAMPLES_NS}/{CLIENT}" in consent_in_chromium(node, url, screenshots)
    wait_until(lambda: all_ready(node), 60, "the GoogleClient and both Branches Ready")
    # The consumer's pod starts once its Branch's Secret exists (the kubelet retries the mount).
    wait_until(lambda: ready_replicas(node, CONSUMER, EXAMPLES_NS) >= 1, 180, f"{CONSUMER} Ready")
    # As the API server stored them (with its defaults), read through the only version then.
    return {
        (doc["kind"], doc["metadata"]["name"]): read_as(
            node, "v1alpha1", doc["kind"], doc["metadata"]["name"]
        )["spec"]
        for doc in examples
        if doc["kind"] in PLURALS
    }


@pytest.fixture(scope="module")
def core(node: Node) -> Iterator[client.CoreV1Api]:
    with core_api(node) as api:
        yield api


@dataclasses.dataclass(frozen=True)
class Watched:
    """The tokens, from consent to the end of the module: the GoogleClient's own Secret (one
    new token per call to Google), the consumer's Secret in the API, and its file in the pod."""

    client_secret: SecretWatch
    consumer_secret: SecretWatch
    reader: PodReader


@pytest.fixture(scope="module")
def watched(consented: Any, node: Node, core: client.CoreV1Api) -> Iterator[Watched]:
    with (
        watching(core, EXAMPLES_NS, CLIENT_SECRET) as client_secret,
        watching(core, EXAMPLES_NS, CONSUMER_SECRET) as consumer_secret,
        reading_token_file(node, EXAMPLES_NS, CONSUMER) as reader,
    ):
        wait_until(
            lambda: client_secret.seen and consumer_secret.seen, 30, "the tokens in the watches"
        )
        yield Watched(client_secret, consumer_secret, reader)


# --- the tests, in order ------------------------------------------------------------------------


def test_the_previous_release_refreshes(watched: Watched) -> None:
    # The upgrade follows at once: the next refresh is due 150 s later, after its rollout.
    consented = set(watched.client_secret.seen)
    wait_until(
        lambda: (
            set(watched.client_secret.seen) - consented
            and set(watched.consumer_secret.seen) - consented
        ),
        REFRESH_WAIT_SECONDS,
        "a refresh by the previous release, in the client's and the consumer's Secrets",
    )
    never_expired(watched.reader)


def test_upgrade_keeps_consent_tokens_and_the_refresh_schedule(
    node: Node,
    consented: dict[tuple[str, str], Any],
    watched: Watched,
    measurements: Measurements,
) -> None:
    private = grant(node)
    counts = sandbox_counts(node)
    earlier = set(watched.client_secret.seen)
    last_token = max(earlier, key=watched.client_secret.seen.__getitem__)
    applied = time.time()
    node.kubectl("apply", "-k", str(REPO / "manifests" / "overlays" / "node"))
    rollout = rolled_out(node, CURRENT_IMAGE)
    rolled = time.time()
    measurements.record(
        "upgrade: apply -k until both replicas Ready on the new image", rollout, "s"
    )
    during_rollout = operator_calls(counts, sandbox_counts(node))

    # The first refresh under the new release, when the schedule says, in both Secrets (the
    # pod's file follows within the kubelet's sync; the reader keeps reading until the end).
    def new_tokens() -> list[str]:
        fresh = [token for token in watched.client_secret.seen if token not in earlier]
        return fresh if set(fresh) & set(watched.consumer_secret.seen) else []

    refreshes = wait_until(new_tokens, REFRESH_WAIT_SECONDS, "the first refresh after the upgrade")
    calls = operator_calls(counts, sandbox_counts(node))
    # What the schedule holds for the window: the refresh of the token held at the upgrade,
    # due refreshBefore ahead of its expiry.
    due = watched.client_secret.expiry[last_token] - REFRESH_BEFORE_SECONDS
    scheduled = int(applied <= due <= time.time())
    measurements.record(
        "upgrade: Google calls from apply -k to the first refresh after it", total(calls), "calls"
    )
    measurements.record("upgrade: refreshes scheduled in that time", scheduled, "refreshes")
    print(f"Google calls: during the rollout {during_rollout}; to the first refresh {calls}")
    # One call per scheduled refresh and nothing else: no code exchange (no new consent), no
    # userinfo or Business Profile lookups by the new replicas, no refresh out of schedule.
    assert during_rollout == {}, during_rollout
    assert len(refreshes) == scheduled == 1, (refreshes, scheduled)
    assert calls == {"token": 1, "token.refresh_token": 1}, calls
    refreshed_at = watched.client_secret.seen[refreshes[0]]
    assert refreshed_at > rolled, "the refresh came before the new release ran alone"
    late = refreshed_at - due
    print(f"the first refresh after the upgrade came {late:+.1f} s from its due time")
    assert REFRESH_LATENESS_RANGE[0] <= late <= REFRESH_LATENESS_RANGE[1], late

    # Still consented, the refresh token kept; the objects read as v1, their specs unchanged.
    assert all_ready(node)
    assert grant(node) == private
    for (kind, name), spec in consented.items():
        assert read_as(node, "v1", kind, name)["spec"] == spec, (kind, name)
    never_expired(watched.reader)


def test_migrate_storage_leaves_only_v1(node: Node, measurements: Measurements) -> None:
    assert stored_versions(node) == {plural: ["v1alpha1", "v1"] for plural in PLURALS.values()}
    started = time.monotonic()
    output = migrate_storage(node)
    measurements.record("migrate-storage on the node", time.monotonic() - started, "s")
    print(output)
    assert stored_versions(node) == {plural: ["v1"] for plural in PLURALS.values()}
    again = migrate_storage(node)
    assert again.count("nothing to do") == len(PLURALS), again


def test_rollback_to_the_previous_release_keeps_working(
    node: Node, watched: Watched, consented: dict[tuple[str, str], Any], measurements: Measurements
) -> None:
    private = grant(node)
    counts = sandbox_counts(node)
    # The previous release's manifests but its CRDs: the API server would refuse them
    # (storedVersions lists v1), and the new ones still serve v1alpha1.
    install = previous_manifests(node, "node")
    kept = [doc for doc in install if doc["kind"] != "CustomResourceDefinition"]
    assert len(install) - len(kept) == len(PLURALS)
    apply(node, kept)
    rollout = rolled_out(node, PREVIOUS_IMAGE)
    measurements.record("rollback: apply until both replicas Ready on the old image", rollout, "s")
    for (kind, name), spec in consented.items():
        assert read_as(node, "v1alpha1", kind, name)["spec"] == spec, (kind, name)

    # The previous operator acts on the objects stored as v1: a refresh on request, now.
    asked = time.time()
    requested = dt.datetime.fromtimestamp(asked, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    earlier = set(watched.client_secret.seen)
    node.kubectl(
        "annotate",
        f"googleclients.v1alpha1.{GROUP}",
        CLIENT,
        "-n",
        EXAMPLES_NS,
        f"{REFRESH_REQUEST}={requested}",
        "--overwrite",
    )
    # Within the interval between requested refreshes (60 s) of the last refresh, at most.
    wait_until(
        lambda: set(watched.client_secret.seen) - earlier,
        120,
        "a refresh by the previous release's operator",
    )
    handled = read_as(node, "v1alpha1", "GoogleClient", CLIENT)["status"]["handledRequests"]
    assert handled.get("refresh"), handled
    # That one call, and none while the previous release rolled in.
    calls = operator_calls(counts, sandbox_counts(node))
    assert calls == {"token": 1, "token.refresh_token": 1}, calls
    assert all_ready(node)
    assert grant(node) == private
    next_token_in_file(watched.reader, watched.consumer_secret, asked, measurements)
    never_expired(watched.reader)

    # From consent to here, through the upgrade and the rollback.
    now = time.time()
    for where, tokens in (
        ("the Secret in the API", in_api(watched.consumer_secret)),
        ("the file in the consumer pod", in_file(watched.reader)),
    ):
        measurements.record(
            f"longest time {where} had < {PROMISE_SECONDS:.0f} s left (10 min of 1 h, scaled)",
            longest_below(tokens, now, PROMISE_SECONDS),
            "s",
        )
    least = min(record["left"] for record in watched.reader.records())
    measurements.record("least time left of the token in the consumer pod's file", least, "s")
    # The operator's side of the promise holds outright; the file lags by the kubelet's sync.
    assert longest_below(in_api(watched.consumer_secret), now, PROMISE_SECONDS) == 0
