"""Helpers of the node tier: waiting on observed state, kubectl as JSON, what the tier measures,
watching a consumer's token (in the API and inside its pod) and consenting in Chromium."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client import ApiException
from playwright.sync_api import sync_playwright
from urllib3.exceptions import HTTPError

from devkit.node import NODE_IP, Node
from fixtures.browser import CHROMIUM, CHROMIUM_ARGS, screenshot

OPERATOR_NS = "google-token-operator"
CALLBACK = "google-token-operator-callback"
# Where the examples' consumer mounts its Branch's Secret.
TOKEN_DIR = "/var/run/secrets/google-token"
# The sandbox's tokens live 300 s (node overlay); node-examples refreshes them 150 s before
# expiry, minus up to 10 % jitter: the next refresh is at most ~165 s after the last.
REFRESH_WAIT_SECONDS = 240.0
# The kubelet updates Secret volumes at its pod sync (syncFrequency 1 min, jittered by up to
# half of it).
PROPAGATION_BOUND_SECONDS = 120.0


def wait_until(
    check: Callable[[], Any],
    timeout: float,
    what: str,
    process: subprocess.Popen[str] | None = None,
    interval: float = 0.5,
    describe: Callable[[], str] | None = None,
) -> Any:
    """``check()``'s first truthy result; fails naming ``what`` (and ``process``'s exit) if none.

    ``describe`` says what was there instead, in the failure.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if process is not None and process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"exited ({process.returncode}) before {what}:\n{output}")
        if time.monotonic() > deadline:
            found = f"; found {describe()}" if describe else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{found}")
        time.sleep(interval)


@dataclasses.dataclass
class Measurements:
    """Numbers the tier measures; printed in pytest's summary and kept in test-output."""

    values: list[tuple[str, float, str]] = dataclasses.field(default_factory=list)

    def record(self, what: str, value: float, unit: str) -> None:
        self.values.append((what, value, unit))
        print(f"measured: {what}: {value:.1f} {unit}", flush=True)

    def lines(self) -> list[str]:
        return [f"{what}: {value:.1f} {unit}" for what, value, unit in self.values]


def get(node: Node, *args: str) -> Any:
    """``kubectl get ... -o json`` parsed; None when the object does not exist."""
    result = node.kubectl("get", *args, "-o", "json", check=False)
    if result.returncode != 0:
        if "NotFound" in result.stderr:
            return None
        raise AssertionError(f"kubectl get {' '.join(args)}: {result.stderr}")
    return json.loads(result.stdout)


def ready_replicas(node: Node, name: str, namespace: str = OPERATOR_NS) -> int:
    deployment = get(node, "deployment", name, "-n", namespace) or {}
    return int((deployment.get("status") or {}).get("readyReplicas") or 0)


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    for entry in ((obj or {}).get("status") or {}).get("conditions") or []:
        if entry.get("type") == kind:
            return dict(entry)
    return {}


def python_in_pod(namespace: str, pod: str, script: str, *args: str) -> list[str]:
    """kubectl's arguments to run ``python -c script args`` in the pod (unbuffered output)."""
    return ["exec", "-n", namespace, pod, "--", "python", "-u", "-c", script, *args]


class PodReader:
    """A process inside a pod (``kubectl exec``) whose output lines are collected as they come."""

    def __init__(self, node: Node, namespace: str, pod: str, script: str) -> None:
        self.lines: list[str] = []
        self._process = subprocess.Popen(
            [
                str(node.kubectl_path),
                f"--kubeconfig={node.kubeconfig}",
                *python_in_pod(namespace, pod, script),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.lines.append(line.rstrip("\n"))

    def records(self) -> list[dict[str, Any]]:
        """The JSON lines printed so far (anything else, e.g. an error, fails the caller)."""
        found = []
        for line in list(self.lines):
            try:
                found.append(json.loads(line))
            except ValueError as error:
                raise AssertionError(f"the reader in the pod printed {line!r}") from error
        return found

    def alive(self) -> bool:
        return self._process.poll() is None

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(10)
        self._thread.join(5)


# The callback's policy allows DNS to pods labelled k8s-app: kube-dns, as clusters run it; the
# node's CoreDNS is a process of the node itself, at its address. This stands in for that rule:
# DNS only, to the node's address, for the callback pods.
NODE_DNS_POLICY = "node-dns"


def allow_node_dns(node: Node, namespace: str) -> None:
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": NODE_DNS_POLICY, "namespace": namespace},
        "spec": {
            "podSelector": {
                "matchLabels": {"app.kubernetes.io/name": "google-token-operator-callback"}
            },
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [{"ipBlock": {"cidr": f"{NODE_IP}/32"}}],
                    "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
                }
            ],
        },
    }
    node.kubectl("apply", "-f", "-", input=json.dumps(policy))


# Runs inside a consumer pod (the Secret mounted at TOKEN_DIR): reads the mounted token file as a
# consumer would, prints a JSON line whenever the token changes, when it finds it expired, and
# every 10 s (alive). "auth": whether the templated `authorization` key (a Branch's
# spec.secretTemplate, as old-town's in the examples) holds "Bearer <the same token>"; None
# where the Secret has no such key.
READER = f"""
import datetime, hashlib, json, pathlib, time
path = pathlib.Path({TOKEN_DIR!r}) / "token.json"
header = path.parent / "authorization"
last, beat = None, 0.0
while True:
    raw = path.read_text()
    authorization = header.read_text() if header.exists() else None
    if path.read_text() != raw:  # the kubelet swapped the files between the two reads
        continue
    data = json.loads(raw)
    now = time.time()
    expiry = datetime.datetime.fromisoformat(data["expiry"].replace("Z", "+00:00")).timestamp()
    digest = hashlib.sha256(data["access_token"].encode()).hexdigest()[:16]
    auth = None if authorization is None else authorization == "Bearer " + data["access_token"]
    if digest != last or expiry <= now or now - beat > 10:
        record = {{"t": now, "token": digest, "left": expiry - now, "auth": auth}}
        print(json.dumps(record), flush=True)
        last, beat = digest, now
    time.sleep(0.2)
"""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


class SecretWatch:
    """When this process saw each new access token of a Secret in the API (a watch, not polls)."""

    def __init__(self, core: client.CoreV1Api, namespace: str, name: str) -> None:
        self.seen: dict[str, float] = {}
        # Each token's expiry (epoch seconds), as the Secret's `expiry` says.
        self.expiry: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(core, namespace, name), daemon=True)
        self._thread.start()

    def _run(self, core: client.CoreV1Api, namespace: str, name: str) -> None:
        while not self._stop.is_set():
            try:
                self._watch(core, namespace, name)
            except (ApiException, HTTPError):
                # The API server ends watches now and then (and is gone once the node stops);
                # the next one starts with a fresh list, and a token seen again keeps the time
                # it was first seen.
                time.sleep(0.2)

    def _watch(self, core: client.CoreV1Api, namespace: str, name: str) -> None:
        stream = watch.Watch().stream(
            core.list_namespaced_secret,
            namespace,
            field_selector=f"metadata.name={name}",
            timeout_seconds=30,
        )
        for event in stream:
            data = event["object"].data or {}
            if "access_token" in data:
                token = digest(base64.b64decode(data["access_token"]).decode())
                self.seen.setdefault(token, time.time())
                expiry = base64.b64decode(data.get("expiry", "")).decode()
                with contextlib.suppress(ValueError):
                    self.expiry[token] = dt.datetime.fromisoformat(expiry).timestamp()
            if self._stop.is_set():
                return

    def stop(self) -> None:
        self._stop.set()


def consent_in_chromium(node: Node, url: str, test_output: Path) -> str:
    """Open the consent ``url`` in headless Chromium, allow, land on the callback pod; the text
    of the page it shows. The callback pod must be Ready."""
    # The browser runs on this host and reaches both through their Services: their cluster
    # names resolve to the cluster IPs, which kube-proxy routes to the pods.
    rules = ",".join(
        f"MAP {name}.{OPERATOR_NS}.svc.cluster.local "
        + get(node, "service", name, "-n", OPERATOR_NS)["spec"]["clusterIP"]
        for name in ("google-sandbox", CALLBACK)
    )
    callback_url = f"http://{CALLBACK}.{OPERATOR_NS}.svc.cluster.local/oauth2/callback"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[*CHROMIUM_ARGS, f"--host-resolver-rules={rules}"],
        )
        try:
            page = browser.new_page()
            page.goto(url)
            screenshot(page, test_output / "consent.png")
            with page.expect_response(lambda r: r.url.startswith(callback_url + "?")) as landed:
                page.get_by_role("button", name="Allow").click()
            page.wait_for_load_state()
            screenshot(page, test_output / "authorized.png")
            assert landed.value.status == 200
            text = page.inner_text("main")
        finally:
            browser.close()
    return text


def operator_pods(node: Node) -> list[dict[str, Any]]:
    listed = get(node, "pods", "-n", OPERATOR_NS, "-l", "app.kubernetes.io/component=operator") or {
        "items": []
    }
    return list(listed["items"])


def ready(pod: dict[str, Any]) -> bool:
    return (
        pod["metadata"].get("deletionTimestamp") is None
        and condition(pod, "Ready").get("status") == "True"
    )


def next_token_in_file(
    reader: PodReader, watcher: SecretWatch, after: float, measurements: Measurements
) -> None:
    """Wait for the next refresh in the API, then for the consumer's file to follow."""
    known = {record["token"] for record in reader.records()}

    def refreshed() -> str | None:
        fresh = [t for t, seen in watcher.seen.items() if seen > after and t not in known]
        return fresh[0] if fresh else None

    token = wait_until(refreshed, REFRESH_WAIT_SECONDS, "the operator's next refresh")

    def in_file() -> dict[str, Any] | None:
        return next((r for r in reader.records() if r["token"] == token), None)

    record = wait_until(in_file, PROPAGATION_BOUND_SECONDS, "the new token in the pod's file")
    delay = record["t"] - watcher.seen[token]
    measurements.record("kubelet Secret volume propagation (API update -> file in pod)", delay, "s")
    assert 0 <= delay < PROPAGATION_BOUND_SECONDS
    # A fresh token arrived with most of its life ahead of it.
    assert record["left"] > 100, record


def never_expired(reader: PodReader, templated: bool = False) -> None:
    """The pod's file never held an expired token; `templated`: its `authorization` key
    followed every token (the kubelet swaps all keys of a volume at once)."""
    assert reader.alive(), "\n".join(reader.lines)
    records = reader.records()
    assert records and all(record["left"] > 0 for record in records), [
        r for r in records if r["left"] <= 0
    ]
    if templated:
        assert all(record["auth"] for record in records), [r for r in records if not r["auth"]]


@contextlib.contextmanager
def core_api(node: Node) -> Iterator[client.CoreV1Api]:
    """The Kubernetes client of the node's admin."""
    api = config.new_client_from_config(config_file=str(node.kubeconfig))
    try:
        yield client.CoreV1Api(api)
    finally:
        api.close()


@contextlib.contextmanager
def watching(core: client.CoreV1Api, namespace: str, name: str) -> Iterator[SecretWatch]:
    watcher = SecretWatch(core, namespace, name)
    try:
        yield watcher
    finally:
        watcher.stop()


@contextlib.contextmanager
def reading_token_file(node: Node, namespace: str, app: str) -> Iterator[PodReader]:
    """:data:`READER` running in the first pod labelled ``app.kubernetes.io/name=<app>``."""
    pods = get(node, "pods", "-n", namespace, "-l", f"app.kubernetes.io/name={app}")
    running = PodReader(node, namespace, pods["items"][0]["metadata"]["name"], READER)
    try:
        wait_until(lambda: running.records(), 60, f"the reader in {namespace}/{app}'s pod")
        yield running
    finally:
        running.stop()
