"""Find, or build once, the Go command-line tools of the chart and alert tests: helm, promtool.

Each tool is pinned by a wrapper Go module under ``hack/`` (``hack/helm``, ``hack/promtool``:
their go.mod and go.sum are the only place the versions are pinned) and built with the
machine's ``go`` into ``<cache>/go-tools/<name>-<version>-<digest>/<name>``, next to the kube
binaries and in the same way (devkit.binaries: the same cache root, build lock and build
environment). ``python -m devkit.gotools [NAME ...]`` builds them if needed and prints their
paths.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .binaries import (
    BinariesMissingError,
    _build_environment,
    cache_root,
    exclusive_lock,
    parse_go_mod,
    repo_root,
)


@dataclasses.dataclass(frozen=True)
class GoTool:
    """One command: its Go package, the wrapper module pinning it, how to stamp its version."""

    name: str
    # The module whose pinned version is the tool's version.
    module: str
    package: str
    module_subdir: Path
    # Module version -> the -X flags that stamp it (what `go build` cannot know).
    version_flags: Callable[[str], list[str]]
    tags: tuple[str, ...] = ()


def prometheus_version(module_version: str) -> str:
    """Prometheus 3.x is published as Go module v0.3XX.Y: ``v0.316.0`` is release 3.16.0."""
    match = re.fullmatch(r"v0\.(\d)(\d\d)\.(\d+)", module_version)
    if match is None:
        return module_version.removeprefix("v")
    major, minor, patch = match.groups()
    return f"{major}.{int(minor)}.{patch}"


HELM = GoTool(
    name="helm",
    module="helm.sh/helm/v4",
    package="helm.sh/helm/v4/cmd/helm",
    module_subdir=Path("hack") / "helm",
    # As Helm's Makefile does for a tagged release (an empty metadata drops "+unreleased").
    version_flags=lambda version: [
        f"-X helm.sh/helm/v4/internal/version.version={version}",
        "-X helm.sh/helm/v4/internal/version.metadata=",
    ],
)
PROMTOOL = GoTool(
    name="promtool",
    module="github.com/prometheus/prometheus",
    package="github.com/prometheus/prometheus/cmd/promtool",
    module_subdir=Path("hack") / "promtool",
    version_flags=lambda version: [
        f"-X github.com/prometheus/common/version.Version={prometheus_version(version)}"
    ],
    # Leaves out every service-discovery plugin (cloud SDKs): `promtool test rules` and
    # `check rules` need none, and the build takes a fraction of the time.
    tags=("remove_all_sd",),
)
TOOLS = {tool.name: tool for tool in (HELM, PROMTOOL)}


@dataclasses.dataclass(frozen=True)
class ToolPins:
    version: str
    go: str
    digest: str


def read_tool_pins(tool: GoTool, module_dir: Path) -> ToolPins:
    go_mod = (module_dir / "go.mod").read_bytes()
    go_sum = (module_dir / "go.sum").read_bytes()
    versions = parse_go_mod(go_mod.decode())
    missing = [m for m in (tool.module, "go") if m not in versions]
    if missing:
        raise BinariesMissingError(f"{module_dir / 'go.mod'} does not pin {', '.join(missing)}")
    digest = hashlib.sha256(go_mod + b"\0" + go_sum).hexdigest()[:12]
    return ToolPins(version=versions[tool.module], go=versions["go"], digest=digest)


def tool_dir(tool: GoTool, pins: ToolPins) -> Path:
    """Where the tool built from these pins is (or will be) cached."""
    return cache_root() / "go-tools" / f"{tool.name}-{pins.version}-{pins.digest}"


def _progress(message: str) -> None:
    print(f"[go-tools] {message}", file=sys.stderr, flush=True)


def ensure_tool(tool: GoTool) -> Path:
    """The tool's executable; built into the cache first if it is not there yet.

    Raises BinariesMissingError naming what is missing when it can be neither found nor built.
    """
    module_dir = repo_root() / tool.module_subdir
    if not (module_dir / "go.mod").is_file():
        raise BinariesMissingError(f"no {tool.name}: {module_dir / 'go.mod'} does not exist")
    pins = read_tool_pins(tool, module_dir)
    target = tool_dir(tool, pins)
    binary = target / tool.name
    if os.access(binary, os.X_OK):
        return binary
    target.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(target.parent / f".{tool.name}.lock"):
        # Another process may have built it while this one waited for the lock.
        if not os.access(binary, os.X_OK):
            build_tool(tool, module_dir, pins, target)
    return binary


def build_tool(tool: GoTool, module_dir: Path, pins: ToolPins, target: Path) -> None:
    """``go build`` the tool into a temp folder beside ``target``, then rename it (atomic)."""
    go = shutil.which("go")
    if go is None:
        raise BinariesMissingError(
            f"no {tool.name}: the cache has no {target}, and `go` is not on PATH to build it. "
            f"Install Go {pins.go} or newer (https://go.dev/dl/)."
        )
    _progress(
        f"building {tool.name} {pins.version} from {module_dir} into {target} "
        "(once; minutes, downloads modules via GOPROXY)"
    )
    # The caller holds the lock, so a staging folder left here is from a killed build.
    for stale in target.parent.glob(f".build-{tool.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".build-{tool.name}-", dir=target.parent))
    ldflags = " ".join(["-s", "-w", *tool.version_flags(pins.version)])
    command = [go, "build", "-trimpath", "-ldflags", ldflags]
    if tool.tags:
        command += ["-tags", ",".join(tool.tags)]
    command += ["-o", str(staging / tool.name), tool.package]
    started = time.monotonic()
    try:
        result = subprocess.run(
            command,
            cwd=module_dir,
            env=_build_environment(os.environ),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-20:])
            raise BinariesMissingError(
                f"building {tool.name} failed (exit {result.returncode}):\n{tail}\n"
                f"Needs Go {pins.go} or newer (or a Go that may download it: GOTOOLCHAIN=auto) "
                "and access to the Go module proxy (GOPROXY)."
            )
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _progress(f"built {tool.name} in {time.monotonic() - started:.0f} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devkit.gotools",
        description="Find or build (once, cached outside the repo) helm and promtool.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"{', '.join(TOOLS)} (all)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(TOOLS))
    if unknown:
        parser.error(f"unknown tool {', '.join(unknown)}; choose from {', '.join(TOOLS)}")
    try:
        for name in args.names or TOOLS:
            print(ensure_tool(TOOLS[name]))
    except BinariesMissingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
