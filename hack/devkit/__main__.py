"""``python -m devkit build|up|image|node-up|node-down``.

``build`` locates (or builds once) the binaries and prints their folder; ``up`` starts a
control plane, prints ``export KUBECONFIG=...`` and keeps it running until Ctrl-C or SIGTERM;
``image`` builds the images without a Docker engine and prints their sizes; ``node-up`` starts
a single-node cluster (``devkit.node``) in the background and prints ``export KUBECONFIG=...``;
``node-down`` stops it and removes whatever a node left on this machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from . import images, node
from .binaries import (
    BinariesMissingError,
    cache_root,
    ensure_binaries,
    ensure_netpol_binaries,
    ensure_node_binaries,
)
from .controlplane import ControlPlane, ControlPlaneError
from .images import ImageBuildError
from .lifecycle import OWNER_FILE, owner_running

# A detached node (`node-up`) says here where it is; `node-down` reads it.
NODE_STATE = "node-state.json"
NODE_LOG = "node.log"
NODE_STOP_TIMEOUT = 240.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devkit",
        description="Local Kubernetes for tests and demos: a control plane, or a whole node.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    build = commands.add_parser(
        "build", help="find or build etcd/kube-apiserver/kubectl; print the folder"
    )
    build.add_argument(
        "--node",
        action="store_true",
        help="the node's binaries (and its NetworkPolicy enforcer) instead",
    )
    commands.add_parser("up", help="start a control plane and keep it running until Ctrl-C")
    commands.add_parser("image", help="build the images with buildah (no Docker engine)")
    node_up = commands.add_parser("node-up", help="start a single-node cluster in the background")
    node_up.add_argument("--foreground", action="store_true", help=argparse.SUPPRESS)
    commands.add_parser("node-down", help="stop the node; remove anything a node left behind")
    args = parser.parse_args(argv)

    try:
        if args.command == "build":
            if args.node:
                ensure_netpol_binaries()
            print(ensure_node_binaries() if args.node else ensure_binaries())
            return 0
        if args.command == "image":
            return _build_images()
        if args.command == "node-up":
            return _serve_node() if args.foreground else _detach_node()
        if args.command == "node-down":
            return _node_down()
        with _until_interrupted(), ControlPlane() as control_plane:
            print(f"export KUBECONFIG={control_plane.kubeconfig}", flush=True)
            print(
                f"control plane at {control_plane.server} is ready; Ctrl-C stops it",
                file=sys.stderr,
                flush=True,
            )
            signal.pause()
        return 0
    except (BinariesMissingError, ControlPlaneError, ImageBuildError, node.NodeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


@contextlib.contextmanager
def _until_interrupted() -> Iterator[None]:
    """Ctrl-C and SIGTERM unwind the `with` inside, which stops what it started.

    SIGINT explicitly too: a shell starts background jobs with it ignored.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    try:
        yield
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr, flush=True)


def _build_images() -> int:
    started = time.monotonic()
    sizes = images.build_all()
    for name, size in sizes.items():
        print(f"{name}: {size / 1e6:.0f} MB uncompressed ({images.images_dir()})")
    print(f"images built in {time.monotonic() - started:.0f} s")
    return 0


def _state_file() -> Path:
    return cache_root() / NODE_STATE


def _serve_node() -> int:
    """The detached node's own process: start, say so in the state file, run until SIGTERM."""
    with _until_interrupted(), node.Node() as running:
        state = {"pid": os.getpid(), "kubeconfig": str(running.kubeconfig)}
        _state_file().write_text(json.dumps(state))
        print(f"node up in {running.start_seconds:.1f} s", flush=True)
        try:
            signal.pause()
        finally:
            _state_file().unlink(missing_ok=True)
    for phase, seconds in running.stop_phases.items():
        print(f"  {phase}: {seconds:.1f} s", flush=True)
    print(f"node stopped in {running.stop_seconds:.1f} s", flush=True)
    return 0


def _detach_node() -> int:
    """Start `node-up --foreground` in its own session, wait until it is up or has failed."""
    log = cache_root() / NODE_LOG
    log.parent.mkdir(parents=True, exist_ok=True)
    _state_file().unlink(missing_ok=True)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "devkit", "node-up", "--foreground"],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    while not _state_file().exists():
        if process.poll() is not None:
            print(log.read_text(errors="replace"), file=sys.stderr)
            raise node.NodeError(f"the node did not start (exit {process.returncode}, log {log})")
        time.sleep(0.5)
    state = json.loads(_state_file().read_text())
    print(f"export KUBECONFIG={state['kubeconfig']}")
    print(f"node up (pid {process.pid}, log {log}); `make node-down` stops it", file=sys.stderr)
    return 0


def _node_down() -> int:
    started = time.monotonic()
    if _state_file().exists():
        pid = int(json.loads(_state_file().read_text())["pid"])
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + NODE_STOP_TIMEOUT
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.5)
        print((cache_root() / NODE_LOG).read_text(errors="replace")[-2000:], file=sys.stderr)
    # Whatever a node that died (or was killed) left behind, unless a node still runs: the
    # bridge, chains and cgroups are the machine's, and would be a running node's.
    swept = node.sweep_stale(ensure_node_binaries())
    if swept is None:
        running = [folder for folder in node.node_workdirs() if owner_running(folder)]
        owners = ", ".join((folder / OWNER_FILE).read_text().strip() for folder in running)
        raise node.NodeError(
            f"a node (started by process {owners or 'unknown'}) still runs or starts (a test "
            "run?): nothing removed"
        )
    for line in swept:
        print(f"removed left-over {line}", file=sys.stderr)
    _state_file().unlink(missing_ok=True)
    print(f"node down in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
