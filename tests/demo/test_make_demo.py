"""`make demo` run non-interactively: exits 0 and shows Ready resources and one refresh."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_end_to_end_without_a_terminal(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "hack" / "demo.py")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    (tmp_path / "demo.out").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Consent URL (status.authorization.url)" in out
    assert "callback page: HTTP 200" in out
    ready_lines = [line for line in out.splitlines() if "LocationVerified" in line]
    assert len(ready_lines) >= 2  # both Branches Ready in the kubectl output
    assert any("TokenValid" in line and "owner@example.com" in line for line in out.splitlines())
    assert "refreshed at" in out
    assert "reviews, average" in out
    assert "Nothing is left running" in out
