"""Helpers of the node tier: waiting on observed state, kubectl as JSON, what the tier measures."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from devkit.node import NODE_IP, Node


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
