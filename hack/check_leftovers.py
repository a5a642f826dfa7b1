#!/usr/bin/env python3
"""Fail if a local control plane outlived the run that started it: run after `make test`.

Finds processes whose command line mentions a control-plane temp dir (etcd and kube-apiserver
keep their data, certs and tokens there) and temp dirs with the control-plane prefix. One is
left behind when the process that started it (its dir's owner.pid) is gone; one whose owner
still runs, such as another test session or `devcluster up`, is only mentioned.
Exits 1 and lists what was left behind, if anything.

With --sweep-stale (run before the tests), what an earlier, interrupted run left behind is
removed instead and listed, so the check afterwards judges only this run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from devkit import OWNER_FILE, TEMP_PREFIX

_WORKDIR = re.compile(rf"(/[^\s=]*/{re.escape(TEMP_PREFIX)}[^/\s]+)")


def owner_running(workdir: Path) -> bool:
    try:
        owner = int((workdir / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return False
    return Path(f"/proc/{owner}").exists()


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


def sweep_stale() -> int:
    """Kill and remove control planes whose owner is gone; list what was removed."""
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
    for line in in_use:
        print(f"in use by a running owner (not counted): {line}", file=sys.stderr)
    for line in leftovers:
        print(f"left behind: {line}", file=sys.stderr)
    if leftovers:
        return 1
    print(f"no control-plane processes or {TEMP_PREFIX}* temp dirs left behind")
    return 0


if __name__ == "__main__":
    sys.exit(main())
