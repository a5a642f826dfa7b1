"""The node tier: one real single-node cluster (devkit.node) for the tests of a module.

Every test here is marked ``node``. The node needs root and what `make e2e-node` installs and
builds first (Debian packages, the node's binaries, the images); without them the session's
node fixture fails with a message naming what is missing. The numbers the tier measures are
printed at the end of the run and written to test-output/node-measurements.txt.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from node_support import Measurements, allow_node_dns, get, wait_until

from devkit.binaries import BinariesMissingError
from devkit.images import ImageBuildError
from devkit.node import Node, NodeError

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "test-output"
OPERATOR_NS = "google-token-operator"
EXAMPLES_NS = "reviews-demo"
_MEASUREMENTS = Measurements()
NODE_LOCK_TIMEOUT = 1800.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.node)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _MEASUREMENTS.values:
        return
    terminalreporter.section("node tier measurements")
    for line in _MEASUREMENTS.lines():
        terminalreporter.write_line(line)
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / "node-measurements.txt").write_text("\n".join(_MEASUREMENTS.lines()) + "\n")


@pytest.fixture(scope="session")
def measurements() -> Measurements:
    return _MEASUREMENTS


# Module-scoped: the node stops as soon as the tests that use it are done, not at the end of a
# `make test` session that goes on with other tiers.
@pytest.fixture(scope="module")
def node(request: pytest.FixtureRequest, measurements: Measurements) -> Iterator[Node]:
    capture = request.config.pluginmanager.getplugin("capturemanager")
    # Another checkout's test run on this machine may have the node: wait for it.
    running = Node(lock_timeout=NODE_LOCK_TIMEOUT)
    try:
        # A first build takes minutes: let its progress reach the terminal.
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            running.start()
    except (BinariesMissingError, ImageBuildError, NodeError) as error:
        raise pytest.fail.Exception(str(error), pytrace=False) from None
    measurements.record(
        "node start (control plane, containerd, kubelet, ... Ready)", running.start_seconds, "s"
    )
    try:
        yield running
    finally:
        running.stop()
        measurements.record(
            "node stop (every pod through the kubelet, then all)", running.stop_seconds, "s"
        )
        for phase, seconds in running.stop_phases.items():
            measurements.record(f"  node stop: {phase}", seconds, "s")
        # The orderly stop must have been enough: the safety net found nothing.
        assert running.swept == [], "the node's stop left this behind:\n" + "\n".join(running.swept)


@pytest.fixture(scope="module")
def product(node: Node, measurements: Measurements) -> Node:
    """`kubectl apply -k manifests/overlays/node` (and the node's DNS for the callback, see
    :func:`allow_node_dns`); both operator replicas Ready."""
    started = time.monotonic()
    node.kubectl("apply", "-k", str(REPO / "manifests" / "overlays" / "node"))
    allow_node_dns(node, OPERATOR_NS)
    wait_until(
        lambda: _ready_replicas(node, "google-token-operator") == 2,
        180,
        "both operator replicas Ready",
    )
    wait_until(lambda: _ready_replicas(node, "google-sandbox") == 1, 120, "the sandbox Ready")
    measurements.record(
        "apply -k overlays/node until both operator replicas Ready", time.monotonic() - started, "s"
    )
    return node


def _ready_replicas(node: Node, name: str) -> int:
    deployment = get(node, "deployment", name, "-n", OPERATOR_NS) or {}
    return int((deployment.get("status") or {}).get("readyReplicas") or 0)
