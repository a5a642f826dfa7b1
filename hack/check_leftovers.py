#!/usr/bin/env python3
"""Fail if a local control plane or node outlived the run that started it: run after the tests.

Control planes: processes whose command line mentions a control-plane temp dir (etcd and
kube-apiserver keep their data, certs and tokens there) and temp dirs with its prefix.

Nodes (devkit.node): their temp dirs; processes in their cgroups or naming their temp dir
(containerd's shims, pods' processes); mounts under their temp dirs (pod volumes, container root
filesystems, network namespaces); the bridge and its veths; iptables rules and chains named
KUBE-* or GTO-* (kube-proxy's, kube-router's, the kubelet's, the node's own); ipsets named KUBE-*
(kube-router's); their cgroups;
/var/log/containers symlinks into their temp dirs; containerd shims' sockets.

Something is left behind when the process that started it (its temp dir's owner.pid) is gone;
what belongs to one whose owner still runs, such as another test session or `make node-up`, is
only mentioned. Exits 1 and lists what was left behind, if anything.

With --sweep-stale (run before the tests), what an earlier, interrupted run left behind is
removed instead and listed, so the check afterwards judges only this run: control planes whose
owner is gone, and, unless a node runs or starts on this machine (its lock is taken), what dead
nodes left (the same sweep as `make node-down`'s).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from devkit import TEMP_PREFIX, node
from devkit.lifecycle import owner_running

_WORKDIR = re.compile(rf"(/[^\s=]*/{re.escape(TEMP_PREFIX)}[^/\s]+)")


def control_plane_processes() -> list[tuple[Path, str]]:
    """(temp dir, description) of every process running from a control-plane temp dir."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # exited while we looked
            continue
        command = " ".join(arg.decode(errors="replace") for arg in argv if arg)
        match = _WORKDIR.search(command)
        if match:
            found.append((Path(match[1]), f"pid {entry.name}: {command[:160]}"))
    return found


def node_leftovers() -> Iterator[str]:
    """Everything of a node on this host, one line each."""
    workdirs = node.node_workdirs()
    for workdir in workdirs:
        yield f"temp dir {workdir}"
    for _, description in node.node_processes(workdirs):
        yield f"process {description}"
    for mount in node.node_mounts(workdirs):
        yield f"mount {mount}"
    for link in node.node_container_log_links(workdirs):
        yield f"symlink {link}"
    for interface in node.node_interfaces():
        yield f"network interface {interface}"
    for table, rule in node.iptables_leftovers():
        yield f"iptables {table}: {rule}"
    for name in node.node_ipsets():
        yield f"ipset {name}"
    for cgroup in node.node_cgroups():
        yield f"cgroup {cgroup}"
    for socket in node.stale_shim_sockets():
        yield f"containerd shim socket {socket}"


def sweep_stale() -> int:
    """Kill and remove control planes and nodes whose owner is gone; list what was removed."""
    for workdir, description in control_plane_processes():
        if not owner_running(workdir):
            pid = int(description.split(":", 1)[0].removeprefix("pid "))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            print(f"removed, left by an earlier run: process {description}", file=sys.stderr)
    for workdir in sorted(Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*")):
        if not owner_running(workdir):
            shutil.rmtree(workdir, ignore_errors=True)
            print(f"removed, left by an earlier run: temp dir {workdir}", file=sys.stderr)
    # Only where a node left something: the node sweep needs root and touches iptables.
    if any(True for _ in node_leftovers()):
        for line in node.sweep_stale(None) or []:
            print(f"removed, left by an earlier run: {line}", file=sys.stderr)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--sweep-stale",
        action="store_true",
        help="remove what earlier runs left behind instead of checking (run before the tests)",
    )
    if parser.parse_args().sweep_stale:
        return sweep_stale()
    leftovers: list[str] = []
    in_use: list[str] = []
    for workdir, description in control_plane_processes():
        (in_use if owner_running(workdir) else leftovers).append(f"process {description}")
    for workdir in sorted(Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*")):
        (in_use if owner_running(workdir) else leftovers).append(f"temp dir {workdir}")
    # A node's resources are host-wide (one bridge, one set of chains): all of them are in use
    # while any node's owner runs.
    node_running = any(owner_running(workdir) for workdir in node.node_workdirs())
    (in_use if node_running else leftovers).extend(node_leftovers())
    for line in in_use:
        print(f"in use by a running owner (not counted): {line}", file=sys.stderr)
    for line in leftovers:
        print(f"left behind: {line}", file=sys.stderr)
    if leftovers:
        return 1
    print(
        f"no control-plane or node processes, {TEMP_PREFIX}*/{node.TEMP_PREFIX}* temp dirs, "
        "mounts, interfaces, iptables rules, ipsets or cgroups left behind"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
