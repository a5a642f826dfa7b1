"""Find, or build once, the binaries the local control plane and the local node run.

The control plane (etcd, kube-apiserver, kubectl), in this order:

1. ``KUBEBUILDER_ASSETS`` when set (envtest's layout: one folder holding the binaries);
2. the cache ``${GTO_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/google-token-operator}/kube-binaries/``,
   one folder per pin set;
3. a build from the wrapper Go module ``hack/kube-binaries`` with the machine's ``go``, written
   into the cache. Its ``go.mod`` is the only place the versions are pinned.

The node (kubelet, kube-controller-manager, kube-scheduler, kube-proxy from that same module;
containerd, its runc shim, ctr and CoreDNS from the wrapper module ``hack/node-binaries``): the
cache ``.../node-binaries/``, else a build from those two modules. No KUBEBUILDER_ASSETS here:
envtest publishes no kubelet.

The node's NetworkPolicy enforcer (kube-router, firewall only; test-only, see
docs/design/2026-12-06-network-policy-enforcer.md): the cache ``.../netpol-binaries/``, else a
build from its own wrapper module ``hack/netpol-binaries`` (its Kubernetes libraries are older
than the node's, so it cannot share their module).
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
from collections.abc import Callable, Iterator, Mapping, Sequence
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
    _build_once(target, BINARIES, lambda: build_binaries(module_dir, pins, target))
    return target


def _build_once(target: Path, names: tuple[str, ...], build: Callable[[], None]) -> None:
    """Run ``build`` unless ``target`` holds ``names``; one build at a time per cache folder."""
    if _has_binaries(target, names):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(target.parent / ".lock"):
        # Another process may have built it while this one waited for the lock.
        if not _has_binaries(target, names):
            build()


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _progress(f"another process is building; waiting for {path}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclasses.dataclass(frozen=True)
class GoBuild:
    """One binary: the Go package to build, in which wrapper module, with which -ldflags."""

    name: str
    module_dir: Path
    package: str
    ldflags: str = "-s -w"


def build_binaries(module_dir: Path, pins: Pins, target: Path) -> None:
    """Build etcd, kube-apiserver and kubectl into ``target`` (see :func:`build_into`)."""
    builds = [
        GoBuild(
            name,
            module_dir,
            package,
            version_ldflags(pins.kubernetes) if name != "etcd" else "-s -w",
        )
        for name, package in _PACKAGES.items()
    ]
    describe = f"kube-apiserver {pins.kubernetes}, etcd {pins.etcd} and kubectl"
    build_into(builds, target, describe, pins.go, alternative=_ASSETS_HINT)


_ASSETS_HINT = (
    "Alternatively set KUBEBUILDER_ASSETS to a folder holding etcd and kube-apiserver 1.34+."
)


def build_into(
    builds: Sequence[GoBuild], target: Path, describe: str, go_version: str, alternative: str = ""
) -> None:
    """Build with ``go`` into a temp folder beside ``target``, then rename it.

    The rename is atomic, so a reader sees either no folder or a complete one. ``alternative``
    ends each error message: what else the user can do.
    """
    go = shutil.which("go")
    if go is None:
        raise BinariesMissingError(
            f"no {describe}: the cache has no {target}, and `go` is not on PATH to build them. "
            f"Install Go {go_version} or newer (https://go.dev/dl/). {alternative}".rstrip()
        )
    env = _build_environment(os.environ)
    _progress(
        f"building {describe} into {target} (once; several minutes, downloads modules via GOPROXY)"
    )
    # The caller holds the lock, so any staging folder left here is from a killed build.
    for stale in target.parent.glob(".build-*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        for build in builds:
            started = time.monotonic()
            command = [go, "build", "-trimpath", "-ldflags", build.ldflags]
            command += ["-o", str(staging / build.name), build.package]
            try:
                result = subprocess.run(
                    command, cwd=build.module_dir, env=env, capture_output=True, text=True
                )
            except OSError as error:
                raise BinariesMissingError(
                    f"cannot run {go} ({error}); install Go {go_version} or newer "
                    f"(https://go.dev/dl/). {alternative}".rstrip()
                ) from error
            if result.returncode != 0:
                raise BinariesMissingError(
                    _build_failure(build.name, go_version, result, alternative)
                )
            _progress(f"built {build.name} in {time.monotonic() - started:.0f} s")
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _build_environment(environ: Mapping[str, str]) -> dict[str, str]:
    env = dict(environ)
    # Static binaries, no C compiler needed; a go.work above the repo must not take over.
    env.update(CGO_ENABLED="0", GOWORK="off")
    return env


def _build_failure(
    name: str, go_version: str, result: subprocess.CompletedProcess[str], alternative: str
) -> str:
    tail = "\n".join(result.stderr.strip().splitlines()[-20:])
    return (
        f"building {name} failed (exit {result.returncode}):\n{tail}\n"
        f"Needs Go {go_version} or newer (or a Go that may download it: GOTOOLCHAIN=auto) and "
        f"access to the Go module proxy (GOPROXY). {alternative}".rstrip()
    )


# --- the node -----------------------------------------------------------------------------

NODE_MODULE_SUBDIR = Path("hack") / "node-binaries"
# From hack/kube-binaries, the same Kubernetes as the control plane.
KUBE_NODE_BINARIES = ("kubelet", "kube-controller-manager", "kube-scheduler", "kube-proxy")
_CONTAINERD_MODULE = "github.com/containerd/containerd/v2"
_COREDNS_MODULE = "github.com/coredns/coredns"
# From hack/node-binaries. containerd, not Debian's 1.6: the kubelet of Kubernetes 1.36 takes
# its cgroup driver from the runtime's RuntimeConfig call, which containerd has since 2.0.
_NODE_PACKAGES = {
    "containerd": f"{_CONTAINERD_MODULE}/cmd/containerd",
    "containerd-shim-runc-v2": f"{_CONTAINERD_MODULE}/cmd/containerd-shim-runc-v2",
    "ctr": f"{_CONTAINERD_MODULE}/cmd/ctr",
    "coredns": _COREDNS_MODULE,
}
NODE_BINARIES = (*KUBE_NODE_BINARIES, *_NODE_PACKAGES)


@dataclasses.dataclass(frozen=True)
class NodePins:
    """The node's versions, and a digest of both wrapper modules."""

    kubernetes: str
    containerd: str
    coredns: str
    go: str
    digest: str

    @property
    def cache_key(self) -> str:
        return f"{self.kubernetes}-containerd{self.containerd}-coredns{self.coredns}-{self.digest}"


def read_node_pins(kube_module_dir: Path, node_module_dir: Path) -> NodePins:
    kube = read_pins(kube_module_dir)
    go_mod = (node_module_dir / "go.mod").read_bytes()
    go_sum = (node_module_dir / "go.sum").read_bytes()
    versions = parse_go_mod(go_mod.decode())
    missing = [m for m in (_CONTAINERD_MODULE, _COREDNS_MODULE, "go") if m not in versions]
    if missing:
        raise BinariesMissingError(
            f"{node_module_dir / 'go.mod'} does not pin {', '.join(missing)}"
        )
    digest = hashlib.sha256(kube.digest.encode() + b"\0" + go_mod + b"\0" + go_sum)
    return NodePins(
        kubernetes=kube.kubernetes,
        containerd=versions[_CONTAINERD_MODULE],
        coredns=versions[_COREDNS_MODULE],
        go=max(kube.go, versions["go"], key=_version_tuple),
        digest=digest.hexdigest()[:12],
    )


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def node_cache_dir(pins: NodePins) -> Path:
    return cache_root() / "node-binaries" / pins.cache_key


def ensure_node_binaries() -> Path:
    """The folder holding every node binary (:data:`NODE_BINARIES`); built once if needed."""
    kube_module = repo_root() / MODULE_SUBDIR
    node_module = repo_root() / NODE_MODULE_SUBDIR
    pins = read_node_pins(kube_module, node_module)
    target = node_cache_dir(pins)
    kube_flags = version_ldflags(pins.kubernetes)
    containerd_flags = f"-s -w -X {_CONTAINERD_MODULE}/version.Version={pins.containerd[1:]}"
    builds = [
        GoBuild(name, kube_module, f"{_KUBERNETES_MODULE}/cmd/{name}", kube_flags)
        for name in KUBE_NODE_BINARIES
    ]
    builds += [
        GoBuild(
            name,
            node_module,
            package,
            containerd_flags if package.startswith(_CONTAINERD_MODULE) else "-s -w",
        )
        for name, package in _NODE_PACKAGES.items()
    ]
    describe = (
        f"the node's binaries (Kubernetes {pins.kubernetes}, containerd {pins.containerd}, "
        f"CoreDNS {pins.coredns})"
    )
    _build_once(target, NODE_BINARIES, lambda: build_into(builds, target, describe, pins.go))
    return target


# --- the node's NetworkPolicy enforcer ------------------------------------------------------

NETPOL_MODULE_SUBDIR = Path("hack") / "netpol-binaries"
_KUBE_ROUTER_MODULE = "github.com/cloudnativelabs/kube-router/v2"
NETPOL_BINARIES = ("kube-router",)


def ensure_netpol_binaries() -> Path:
    """The folder holding kube-router (:data:`NETPOL_BINARIES`); built once if needed."""
    module_dir = repo_root() / NETPOL_MODULE_SUBDIR
    go_mod = (module_dir / "go.mod").read_bytes()
    go_sum = (module_dir / "go.sum").read_bytes()
    versions = parse_go_mod(go_mod.decode())
    missing = [m for m in (_KUBE_ROUTER_MODULE, "go") if m not in versions]
    if missing:
        raise BinariesMissingError(f"{module_dir / 'go.mod'} does not pin {', '.join(missing)}")
    version = versions[_KUBE_ROUTER_MODULE]
    digest = hashlib.sha256(go_mod + b"\0" + go_sum).hexdigest()[:12]
    target = cache_root() / "netpol-binaries" / f"kube-router{version}-{digest}"
    build = GoBuild(
        "kube-router",
        module_dir,
        f"{_KUBE_ROUTER_MODULE}/cmd/kube-router",
        f"-s -w -X {_KUBE_ROUTER_MODULE}/pkg/version.Version={version}",
    )
    describe = f"the node's NetworkPolicy enforcer (kube-router {version})"
    _build_once(
        target,
        NETPOL_BINARIES,
        lambda: build_into([build], target, describe, versions["go"]),
    )
    return target
