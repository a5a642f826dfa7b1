"""The parallel run (`make test`) keeps together what must share one worker: checked with real
xdist workers on a small generated suite (a silently ignored group would let two node tests
wait on each other's node, or two in-place builds collide)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fixtures.workers import group

TESTS = Path(__file__).resolve().parents[1]
# Each test writes the worker that ran it; the run is split over more workers than groups.
RECORDING_TEST = """
import os, pathlib
def test_{name}():
    pathlib.Path("{out}", "{module}-{name}").write_text(os.environ["PYTEST_XDIST_WORKER"])
"""


def test_groups_come_from_the_path() -> None:
    assert group("tests/node/test_image.py::test_help") == "node"
    assert group("tests/node/test_product_on_node.py::test_x[a]") == "node"
    assert group("tests/unit/test_packaging.py::test_wheel") == "repo-build"
    assert group("tests/demo/test_make_demo.py::test_demo") == "repo-build"
    alone = "tests/cluster/test_refresh_schedule.py::test_sixty_second_tokens"
    assert group(alone) == alone


def test_a_group_runs_on_one_worker_and_the_rest_is_spread(tmp_path: Path) -> None:
    suite, out = tmp_path / "suite", tmp_path / "out"
    out.mkdir()
    modules = {"node/test_a.py": 3, "node/test_b.py": 3, "unit/test_packaging.py": 3}
    modules |= {f"cluster/test_c{index}.py": 2 for index in range(4)}
    for module, count in modules.items():
        path = suite / "tests" / module
        path.parent.mkdir(parents=True, exist_ok=True)
        stem = module.replace("/", "-")
        tests = [RECORDING_TEST.format(name=f"t{i}", out=out, module=stem) for i in range(count)]
        path.write_text("".join(tests))
    (suite / "tests" / "conftest.py").write_text('pytest_plugins = ["fixtures.workers"]\n')
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", suite,
         "--numprocesses", "4", "--dist", "loadgroup", "--no-loadscope-reorder", "tests"],
        cwd=suite, check=True, capture_output=True, text=True,
        env={"PYTHONPATH": f"{TESTS}", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    ran = {path.name: path.read_text() for path in out.iterdir()}
    assert len(ran) == sum(modules.values())
    node = {worker for name, worker in ran.items() if name.startswith("node-")}
    builds = {worker for name, worker in ran.items() if name.startswith("unit-")}
    others = {worker for name, worker in ran.items() if name.startswith("cluster-")}
    assert len(node) == 1, ran
    assert len(builds) == 1, ran
    assert len(others) > 1, ran  # the rest is spread, test by test


def test_no_two_test_files_share_a_name() -> None:
    """The tiers are folders, not packages: pytest imports each test file under its base name,
    so a second file of the same name anywhere fails to import (and its tests never run)."""
    seen: dict[str, list[str]] = {}
    for path in sorted(TESTS.rglob("test_*.py")):
        seen.setdefault(path.name, []).append(str(path.relative_to(TESTS)))
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}
