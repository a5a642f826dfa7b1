#!/usr/bin/env python3
"""Measure the local control plane: build, cold start, warm start, stop. One `name value` a line.

    python hack/bench_controlplane.py                  # locate/build as tests do, then start
    python hack/bench_controlplane.py --from-nothing   # empty Go module + build caches first

Cold start is the first start after dropping the kernel's page cache, which needs root
(`controlplane.page_cache_dropped` says whether it worked); warm start is the median of
`--starts` further starts. Starts exclude locating or building the binaries.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devkit import ControlPlane, binaries


def report(name: str, value: float | int) -> None:
    print(f"{name} {value:.2f}" if isinstance(value, float) else f"{name} {value}", flush=True)


@contextmanager
def empty_go_caches() -> Iterator[None]:
    """Point Go's module and build caches, and our binary cache, at a new empty folder."""
    root = Path(tempfile.mkdtemp(prefix="gto-bench-build-"))
    saved = {name: os.environ.get(name) for name in ("GOMODCACHE", "GOCACHE", "GTO_CACHE_DIR")}
    os.environ.update(
        GOMODCACHE=str(root / "gomodcache"),
        GOCACHE=str(root / "gocache"),
        GTO_CACHE_DIR=str(root / "cache"),
    )
    os.environ.pop("KUBEBUILDER_ASSETS", None)
    try:
        yield
    finally:
        # The module cache is read-only on purpose; only `go clean` removes it.
        subprocess.run(["go", "clean", "-modcache"], check=False)
        shutil.rmtree(root, ignore_errors=True)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def timed_binaries(from_nothing: bool) -> Path:
    module_dir = binaries.repo_root() / binaries.MODULE_SUBDIR
    if from_nothing:
        started = time.monotonic()
        subprocess.run(["go", "mod", "download"], cwd=module_dir, check=True)
        report("kube_binaries.module_download_seconds", time.monotonic() - started)
    will_build = not os.environ.get("KUBEBUILDER_ASSETS") and not all(
        (binaries.cache_dir(binaries.read_pins(module_dir)) / name).exists()
        for name in binaries.BINARIES
    )
    started = time.monotonic()
    bin_dir = binaries.ensure_binaries()
    name = "kube_binaries.build_seconds" if will_build else "kube_binaries.locate_seconds"
    report(name, time.monotonic() - started)
    return bin_dir


def drop_page_cache() -> bool:
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def start_stop(bin_dir: Path) -> tuple[float, float]:
    plane = ControlPlane(bin_dir)
    started = time.monotonic()
    plane.start()
    ready = time.monotonic()
    plane.stop()
    return ready - started, time.monotonic() - ready


def measure_starts(bin_dir: Path, starts: int) -> None:
    report("controlplane.page_cache_dropped", int(drop_page_cache()))
    cold, cold_stop = start_stop(bin_dir)
    report("controlplane.cold_start_seconds", cold)
    warm, stops = zip(*(start_stop(bin_dir) for _ in range(starts)), strict=True)
    report("controlplane.warm_start_seconds_median", statistics.median(warm))
    report("controlplane.warm_start_seconds_max", max(warm))
    report("controlplane.stop_seconds_median", statistics.median((cold_stop, *stops)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--starts", type=int, default=5, help="warm starts to take the median of")
    parser.add_argument(
        "--from-nothing",
        action="store_true",
        help="build with empty Go module/build caches (downloads via GOPROXY; minutes)",
    )
    args = parser.parse_args()
    if args.from_nothing:
        with empty_go_caches():
            measure_starts(timed_binaries(from_nothing=True), args.starts)
    else:
        measure_starts(timed_binaries(from_nothing=False), args.starts)


if __name__ == "__main__":
    main()
