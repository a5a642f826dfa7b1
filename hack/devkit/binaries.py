"""Find, or build once, the etcd, kube-apiserver and kubectl binaries the local control plane runs.

Lookup order:

1. ``KUBEBUILDER_ASSETS`` when set (envtest's layout: one folder holding the binaries);
2. the cache ``${GTO_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/google-token-operator}/kube-binaries/``,
   one folder per pin set;
3. a build from the wrapper Go module ``hack/kube-binaries`` with the machine's ``go``, written
   into the cache. Its ``go.mod`` is the only place the versions are pinned.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

# envtest publishes kubectl too, but the control plane itself needs only these two.
SERVER_BINARIES = ("etcd", "kube-apiserver")
BINARIES = (*SERVER_BINARIES, "kubectl")
MODULE_SUBDIR = Path("hack") / "kube-binaries"
# The issue asks for 1.34 or newer: older API servers lack features the tests rely on.
MINIMUM_KUBERNETES = (1, 34)

_KUBERNETES_MODULE = "k8s.io/kubernetes"
_ETCD_MODULE = "go.etcd.io/etcd/server/v3"
# Go package to build -> binary name. etcd's server module is its `etcd` command.
_PACKAGES = {
    "etcd": _ETCD_MODULE,
    "kube-apiserver": f"{_KUBERNETES_MODULE}/cmd/kube-apiserver",
    "kubectl": f"{_KUBERNETES_MODULE}/cmd/kubectl",
}


class BinariesMissingError(RuntimeError):
    """Neither found nor buildable; the message says what is missing and what to do."""


@dataclasses.dataclass(frozen=True)
class Pins:
    """The versions pinned by ``hack/kube-binaries/go.mod`` and a digest of that module."""

    kubernetes: str
    etcd: str
    go: str
    digest: str

    @property
    def cache_key(self) -> str:
        return f"{self.kubernetes}-{self.etcd}-{self.digest}"


def parse_go_mod(text: str) -> dict[str, str]:
    """Module path -> version for every ``require`` of a go.mod, plus ``"go"`` -> the go line."""
    versions: dict[str, str] = {}
    in_block = False
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if line == "require (":
            in_block = True
            continue
        if in_block and line == ")":
            in_block = False
            continue
        fields = line.split()
        if len(fields) == 2 and fields[0] == "go" and not in_block:
            versions["go"] = fields[1]
        elif in_block and len(fields) == 2:
            versions[fields[0]] = fields[1]
        elif len(fields) == 3 and fields[0] == "require":
            versions[fields[1]] = fields[2]
    return versions


def read_pins(module_dir: Path) -> Pins:
    go_mod = (module_dir / "go.mod").read_bytes()
    go_sum = (module_dir / "go.sum").read_bytes()
    versions = parse_go_mod(go_mod.decode())
    missing = [m for m in (_KUBERNETES_MODULE, _ETCD_MODULE, "go") if m not in versions]
    if missing:
        raise BinariesMissingError(f"{module_dir / 'go.mod'} does not pin {', '.join(missing)}")
    return Pins(
        kubernetes=versions[_KUBERNETES_MODULE],
        etcd=versions[_ETCD_MODULE],
        go=versions["go"],
        digest=hashlib.sha256(go_mod + b"\0" + go_sum).hexdigest()[:12],
    )


def version_ldflags(kubernetes: str) -> str:
    """Stamp the version `go build` cannot know: the API server reports and checks it."""
    match = re.fullmatch(r"v(\d+)\.(\d+)\.\d+.*", kubernetes)
    if match is None:
        raise BinariesMissingError(f"cannot read a Kubernetes version from {kubernetes!r}")
    major, minor = match.groups()
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {package}.gitVersion={kubernetes}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
        ]
    return " ".join(flags)


def repo_root() -> Path:
    """The checkout holding ``hack/kube-binaries`` (this file is its hack/devkit/binaries.py)."""
    return Path(__file__).resolve().parents[2]


def cache_root() -> Path:
    configured = os.environ.get("GTO_CACHE_DIR")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "google-token-operator"


def cache_dir(pins: Pins) -> Path:
    """Where the binaries for these pins are (or will be) cached."""
    return cache_root() / "kube-binaries" / pins.cache_key


def _progress(message: str) -> None:
    print(f"[kube-binaries] {message}", file=sys.stderr, flush=True)


def _has_binaries(folder: Path, names: tuple[str, ...]) -> bool:
    return all(os.access(folder / name, os.X_OK) for name in names)


def kubernetes_version(kube_apiserver: Path) -> tuple[int, int]:
    """(major, minor) as the binary reports it, e.g. ``Kubernetes v1.36.3`` -> (1, 36)."""
    output = subprocess.run(
        [str(kube_apiserver), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"v(\d+)\.(\d+)\.", output)
    if match is None:
        raise BinariesMissingError(f"{kube_apiserver} --version printed {output.strip()!r}")
    return int(match[1]), int(match[2])


def _from_kubebuilder_assets(assets: str) -> Path:
    folder = Path(assets)
    missing = [name for name in SERVER_BINARIES if not os.access(folder / name, os.X_OK)]
    if missing:
        raise BinariesMissingError(
            f"KUBEBUILDER_ASSETS={assets} has no executable {' or '.join(missing)}. "
            "Point it at a folder holding etcd and kube-apiserver "
            "(e.g. `setup-envtest use -p path 1.34.x`), or unset it to use the cache/build."
        )
    found = kubernetes_version(folder / "kube-apiserver")
    if found < MINIMUM_KUBERNETES:
        raise BinariesMissingError(
            f"KUBEBUILDER_ASSETS={assets} holds kube-apiserver {found[0]}.{found[1]}; "
            f"{MINIMUM_KUBERNETES[0]}.{MINIMUM_KUBERNETES[1]} or newer is needed."
        )
    return folder


def ensure_binaries() -> Path:
    """The folder holding etcd, kube-apiserver (and kubectl); builds them into the cache if needed.

    Raises BinariesMissingError naming what is missing when they can be neither found nor built.
    """
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        return _from_kubebuilder_assets(assets)

    module_dir = repo_root() / MODULE_SUBDIR
    if not (module_dir / "go.mod").is_file():
        raise BinariesMissingError(
            f"no etcd/kube-apiserver: KUBEBUILDER_ASSETS is not set and {module_dir / 'go.mod'} "
            "(the pinned versions) does not exist. Set KUBEBUILDER_ASSETS to a folder holding "
            "etcd and kube-apiserver 1.34+."
        )
    pins = read_pins(module_dir)
    target = cache_dir(pins)
    if _has_binaries(target, BINARIES):
        return target

    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(target.parent / ".lock"):
        # Another process may have built it while this one waited for the lock.
        if not _has_binaries(target, BINARIES):
            build_binaries(module_dir, pins, target)
    return target


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _progress(f"another process is building the binaries; waiting for {path}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_binaries(module_dir: Path, pins: Pins, target: Path) -> None:
    """Build the binaries with ``go`` into a temp folder beside ``target``, then rename it.

    The rename is atomic, so a reader sees either no folder or a complete one.
    """
    go = shutil.which("go")
    if go is None:
        raise BinariesMissingError(
            "no etcd/kube-apiserver: KUBEBUILDER_ASSETS is not set, the cache has no "
            f"{target}, and `go` is not on PATH to build them. Install Go {pins.go} or newer "
            "(https://go.dev/dl/), or set KUBEBUILDER_ASSETS to a folder holding etcd and "
            "kube-apiserver 1.34+."
        )
    env = _build_environment(os.environ)
    _progress(
        f"building kube-apiserver {pins.kubernetes}, etcd {pins.etcd} and kubectl from "
        f"{module_dir} into {target} (once; several minutes, downloads modules via GOPROXY)"
    )
    # The caller holds the lock, so any staging folder left here is from a killed build.
    for stale in target.parent.glob(".build-*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        for name, package in _PACKAGES.items():
            started = time.monotonic()
            ldflags = version_ldflags(pins.kubernetes) if name != "etcd" else "-s -w"
            command = [go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(staging / name)]
            try:
                result = subprocess.run(
                    [*command, package], cwd=module_dir, env=env, capture_output=True, text=True
                )
            except OSError as error:
                raise BinariesMissingError(
                    f"cannot run {go} ({error}); install Go {pins.go} or newer "
                    "(https://go.dev/dl/), or set KUBEBUILDER_ASSETS."
                ) from error
            if result.returncode != 0:
                raise BinariesMissingError(_build_failure(name, pins, result))
            _progress(f"built {name} in {time.monotonic() - started:.0f} s")
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _build_environment(environ: Mapping[str, str]) -> dict[str, str]:
    env = dict(environ)
    # Static binaries, no C compiler needed; a go.work above the repo must not take over.
    env.update(CGO_ENABLED="0", GOWORK="off")
    return env


def _build_failure(name: str, pins: Pins, result: subprocess.CompletedProcess[str]) -> str:
    tail = "\n".join(result.stderr.strip().splitlines()[-20:])
    return (
        f"building {name} failed (exit {result.returncode}):\n{tail}\n"
        f"Needs Go {pins.go} or newer (or a Go that may download it: GOTOOLCHAIN=auto) and access "
        "to the Go module proxy (GOPROXY). Alternatively set KUBEBUILDER_ASSETS to a folder "
        "holding etcd and kube-apiserver 1.34+."
    )
