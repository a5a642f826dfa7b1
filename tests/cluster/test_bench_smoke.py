"""`make bench` at 20 clients, so the benchmark cannot rot: every phase runs and reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devkit import ControlPlane
from fixtures.operator import REPO


@pytest.mark.slow
def test_the_benchmark_runs_every_phase_at_twenty_clients(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    del control_plane  # the binaries are there; the benchmark starts a control plane of its own
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "hack" / "bench.py"),
            "--sizes",
            "20",
            "--noise",
            "100",
            "--idle-seconds",
            "10",
            "--json",
            str(tmp_path / "bench.json"),
        ],
        env={**os.environ, "PYTHONPATH": str(REPO / "hack"), "BENCH_WORKDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads((tmp_path / "bench.json").read_text())["results"][0]
    assert figures["clients"] == 20 and figures["branches"] == 80
    assert figures["first_start"]["google_token_calls"] == 20
    # One pass per client: its own writes wake nothing.
    assert figures["first_start"]["passes_per_client"] <= 1.1
    assert figures["bare_kopf"]["rss_mb"] > 0 and figures["kopf_daemons"]["rss_mb"] > 0
    assert figures["restart"]["google_token_calls"] == 0
    assert figures["burst"]["google_calls_per_refresh"] == 1.0
    assert figures["burst"]["api_writes_per_refresh"] <= 7.5  # 1 + 4 consumer, private, status
    assert figures["burst"]["margin_of_last_refresh_s"] > 0
    assert sum(figures["jitter"]["histogram_10s"]) == 20
    assert figures["noise"]["unrelated_secrets"] == 100
    assert "| first start: all Ready (s) |" in result.stdout
    assert "| first start: passes per client |" in result.stdout
