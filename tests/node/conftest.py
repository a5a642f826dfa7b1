"""The node tier: one real single-node cluster (devkit.node) for the tests of a module.

Every test here is marked ``node``. The node needs root and the Debian packages `make node-deps`
installs; the node's binaries and the images are built here first (cached; up to date in under
a second). Without what they need, the tier fails with a message naming what is missing. The
numbers the tier measures are printed at the end of the run (test-output/node-measurements.txt).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from node_support import OPERATOR_NS, Measurements, allow_node_dns, ready_replicas, wait_until

from devkit import images
from devkit.binaries import BinariesMissingError, ensure_netpol_binaries, ensure_node_binaries
from devkit.images import ImageBuildError
from devkit.node import Node, NodeError
from fixtures.workers import MEASUREMENTS_FILE

REPO = Path(__file__).resolve().parents[2]
EXAMPLES_NS = "reviews-demo"
_MEASUREMENTS = Measurements()
NODE_LOCK_TIMEOUT = 1800.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.node)


def pytest_sessionfinish() -> None:
    # tests/fixtures/workers.py prints the file in the summary (the tier may run in a worker).
    if _MEASUREMENTS.values:
        MEASUREMENTS_FILE.parent.mkdir(exist_ok=True)
        MEASUREMENTS_FILE.write_text("\n".join(_MEASUREMENTS.lines()) + "\n")


@contextlib.contextmanager
def _yielding_cpu() -> Iterator[None]:
    """Builds run niced (the compilers inherit it): the tests beside them wait on timers and
    deadlines, so they get the CPU first. Root (which the node needs) may raise it back."""
    before = os.getpriority(os.PRIO_PROCESS, 0)
    os.setpriority(os.PRIO_PROCESS, 0, before + 10)
    try:
        yield
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, before)


@pytest.fixture(scope="session", autouse=True)
def node_prerequisites(request: pytest.FixtureRequest) -> None:
    """The node's binaries and images, built (or found up to date) by the process that runs the
    tier: under `make test` that is one worker, while the others run the cluster tests."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    try:
        # A first build takes minutes: let its progress reach the terminal.
        with (
            capture.global_and_fixture_disabled() if capture else contextlib.nullcontext(),
            _yielding_cpu(),
        ):
            ensure_node_binaries()
            ensure_netpol_binaries()
            images.build_all()
    except (BinariesMissingError, ImageBuildError) as error:
        raise pytest.fail.Exception(str(error), pytrace=False) from None


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
        lambda: ready_replicas(node, "google-token-operator") == 2,
        180,
        "both operator replicas Ready",
    )
    wait_until(lambda: ready_replicas(node, "google-sandbox") == 1, 120, "the sandbox Ready")
    measurements.record(
        "apply -k overlays/node until both operator replicas Ready", time.monotonic() - started, "s"
    )
    return node
