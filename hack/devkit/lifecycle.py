"""What the control plane, the node and the background servers share: `with` starts and stops;
servers run as child processes that log to files and die with their parent."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

# A server drains requests on SIGTERM; after this it is killed.
STOP_GRACE_SECONDS = 10.0
_LOG_TAIL_LINES = 40
_PR_SET_PDEATHSIG = 1
# hack/check_leftovers.py reads this file in a temp dir to tell one in use by a running
# process from one left behind.
OWNER_FILE = "owner.pid"


class StartStop:
    """``with thing:`` starts it and always stops it; subclasses define both."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def owned_temp_dir(prefix: str) -> Path:
    """A new temp dir that names this process as its owner (OWNER_FILE)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    (folder / OWNER_FILE).write_text(f"{os.getpid()}\n")
    return folder


def owner_running(folder: Path) -> bool:
    """Whether the process that made ``folder`` (its OWNER_FILE) still runs."""
    try:
        owner = int((folder / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return False
    return Path(f"/proc/{owner}").exists()


def spawn(
    workdir: Path, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a server that logs to ``workdir/logs/<name>.log`` and dies with this process.

    The log is appended to: a server restarted (``ControlPlane.restart``) keeps its history.
    """
    with (workdir / "logs" / f"{name}.log").open("ab") as log:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=env,
            # Own process group: terminate() signals the whole group, Ctrl-C in a terminal
            # reaches only Python, which then stops everything in order.
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGKILL the child when its parent dies.

    The safety net for a parent killed with SIGKILL, where ``atexit`` never runs. Linux sends
    it when the *thread* that started the child exits, so start the control plane from a thread
    that lives as long as it should (the main thread in tests and the CLI).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return preexec


def tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
