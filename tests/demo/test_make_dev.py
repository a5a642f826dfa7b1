"""`make dev` brought up and torn down: consent through the sandbox, a token in a Branch's
Secret, the printed environment working for kubectl and the CLI, the operator's own output
(banner, plain timestamped lines, Branch-tagged lines, no escape codes), and nothing left
running after Ctrl-C."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "reviews-demo"  # manifests/examples
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


class Output:
    """A process's stdout, read on a thread so waits can time out."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        stream = process.stdout
        self._reader = threading.Thread(target=lambda: self.lines.extend(stream), daemon=True)
        self._reader.start()

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def join(self) -> None:
        self._reader.join(timeout=30)


def wait_for(check: Callable[[], bool], timeout: float, what: str, log: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no {what} after {timeout:.0f}s:\n{log()[-4000:]}"
        time.sleep(0.3)


def printed(text: str, pattern: str) -> str:
    found = re.search(pattern, text, re.MULTILINE)
    assert found, f"{pattern!r} not in:\n{text[-3000:]}"
    return found[1]


def leftovers(marks: list[str]) -> list[str]:
    """Processes whose command line or environment names one of `marks` (this run's folders)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            seen = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(mark.encode() in seen for mark in marks):
            found.append(f"pid {entry.name}: {seen[:200]!r}")
    return found


def test_make_dev_serves_the_examples_until_ctrl_c_and_leaves_nothing_running() -> None:
    process = subprocess.Popen(
        [sys.executable, str(REPO / "hack" / "dev.py"), "--auto"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    out = Output(process)
    try:
        wait_for(
            lambda: "Ctrl-C stops everything." in out.text, 180, "ready line", lambda: out.text
        )
        kubeconfig = printed(out.text, r"export KUBECONFIG=(\S+)$")
        path = printed(out.text, r"export PATH=(\S+):\$PATH$")
        operator_log = Path(printed(out.text, r"Logs: operator (\S+), callback"))
        url = printed(out.text, r"^\s+(http://\S+/o/oauth2/v2/auth\?\S+)$")
        assert "secret GOCSPX-replace-with-your-client-secret" in out.text  # the examples' pair
        env = {**os.environ, "KUBECONFIG": kubeconfig, "PATH": f"{path}:{os.environ['PATH']}"}

        def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["kubectl", *args], env=env, capture_output=True, text=True, check=False
            )

        # A person's browser: the sandbox consents (auto-approve), redirects to the callback.
        page = requests.get(url, timeout=30)
        assert page.status_code == 200, page.text[:500]

        def token_in_secret() -> bool:
            got = kubectl("get", "secret", "old-town-google-token", "-n", NAMESPACE, "-o", "json")
            if got.returncode != 0:
                return False
            data = json.loads(got.stdout)["data"]
            return bool(json.loads(base64.b64decode(data["token.json"]))["access_token"])

        wait_for(token_in_secret, 60, "token in old-town-google-token", lambda: out.text)
        log = operator_log.read_text
        # Each Branch's transition, tagged with the Branch (not its GoogleClient acme).
        tags = [f"[{NAMESPACE}/{b}] Ready=True (LocationVerified)" for b in ("old-town", "harbour")]
        wait_for(lambda: all(tag in log() for tag in tags), 60, "the Branches' Ready lines", log)
        status = subprocess.run(
            ["google-token-operator", "status", "-n", NAMESPACE],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert status.returncode == 0 and "acme" in status.stdout, status.stdout + status.stderr
        operator_output = log()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the group
        process.wait(timeout=90)
        out.join()

    assert process.returncode == 0, out.text[-3000:]
    assert out.text.rstrip().endswith("Stopped; nothing is left running.")
    assert "\x1b[" not in out.text + operator_output  # piped: no escape codes
    # The operator's banner, then only plain timestamped lines; the Branch's lines carry the
    # Branch's tag (waited for above); kopf's per-event successes are not at INFO.
    lines = operator_output.splitlines()
    assert all(LINE.match(line) for line in lines), [x for x in lines if not LINE.match(x)][:5]
    assert "google-token-operator " in lines[0] and lines[0].endswith(" starting")
    assert any("Watching: all namespaces; operator namespace: google-token-operator" in line
               for line in lines)  # fmt: skip
    assert any(line.endswith("Leader election: off") for line in lines)
    assert not [line for line in lines if "succeeded" in line and " INFO " in line]
    # Nothing of this run is left: processes, the control plane's folder.
    marks = [str(Path(kubeconfig).parent), str(operator_log.parent)]
    assert not leftovers(marks)
    assert not any(Path(mark).exists() for mark in marks)
