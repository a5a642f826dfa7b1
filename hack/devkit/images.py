"""Build the product's images without a Docker engine, and the images a local node needs.

``buildah`` (vfs storage driver: no overlay-on-overlay, no daemon) builds the repository's own
Dockerfile, unchanged, with one difference: the public base image cannot be pulled here, so
``PYTHON_IMAGE`` names a base assembled from Debian packages (``mmdebstrap``: Debian bookworm's
Python 3.11, the Debian release of the public ``python:3.11-slim-bookworm``). The pause image of
the node is Kubernetes' own ``pause.c`` of the pinned release, compiled here.

Everything lives in the cache (``<cache>/containers`` for buildah's storage, ``<cache>/images``
for the archives the node imports), never in the repository. Each build prints its time and
each image its size.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from .binaries import MODULE_SUBDIR, cache_root, exclusive_lock, repo_root

DEBIAN_SUITE = "bookworm"
DEBIAN_MIRRORS = (
    f"deb http://deb.debian.org/debian {DEBIAN_SUITE} main",
    f"deb http://deb.debian.org/debian {DEBIAN_SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {DEBIAN_SUITE}-security main",
)
# What python:3.11-slim-bookworm offers the Dockerfile: `python` with pip and venv, CA
# certificates, and groupadd/useradd (passwd).
BASE_PACKAGES = (
    "python3.11",
    "python3.11-venv",
    "python3-pip",
    "python-is-python3",
    "ca-certificates",
    "passwd",
)
# Documentation is no use in an image; copyright files stay (licences).
BASE_DPKG_OPTIONS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/locale/*",
)
PAUSE_VERSION = "3.10.2"  # build/pause/Makefile's TAG in Kubernetes v1.36


@dataclasses.dataclass(frozen=True)
class Image:
    """One image: its name in buildah, the name the node's containerd knows it by."""

    key: str
    local_name: str
    node_name: str


# The names the node overlay uses. Not :latest, which the kubelet would always try to pull.
OPERATOR = Image("operator", "localhost/google-token-operator:dev", "google-token-operator:dev")
SANDBOX = Image("sandbox", "localhost/google-token-sandbox:dev", "google-token-sandbox:dev")
PYTHON = Image("python", "localhost/gto-python:3.11-bookworm", "localhost/gto-python:3.11-bookworm")
PAUSE = Image(
    "pause", f"localhost/gto-pause:{PAUSE_VERSION}", f"localhost/gto-pause:{PAUSE_VERSION}"
)
NODE_IMAGES = (OPERATOR, SANDBOX, PYTHON, PAUSE)


class ImageBuildError(RuntimeError):
    """A tool is missing or a build step failed; the message says which and how."""


def images_dir() -> Path:
    """The archives (docker-archive tars) the node imports: ``<key>.tar``."""
    return cache_root() / "images"


def archive(image: Image) -> Path:
    return images_dir() / f"{image.key}.tar"


def _progress(message: str) -> None:
    print(f"[images] {message}", file=sys.stderr, flush=True)


def _run(
    argv: Sequence[str], what: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> str:
    try:
        result = subprocess.run(
            list(argv), capture_output=True, text=True, check=False, cwd=cwd, env=env
        )
    except FileNotFoundError as error:
        raise ImageBuildError(
            f"{what}: {argv[0]} is not installed (make node-deps installs it)"
        ) from error
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        raise ImageBuildError(f"{what} failed (exit {result.returncode}):\n{tail}")
    output: str = result.stdout
    return output


class Buildah:
    """buildah on the project's own storage in the cache, vfs driver."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = [
            "buildah",
            f"--root={root / 'storage'}",
            f"--runroot={root / 'run'}",
            "--storage-driver=vfs",
        ]

    def __call__(self, *args: str, what: str) -> str:
        return _run([*self.base, *args], what)

    def commit_scratch(
        self, name: str, content: Path, destination: str, config: Sequence[str]
    ) -> None:
        """Image ``name``: ``content`` (a tarball is unpacked) at ``destination``, ``config``."""
        container = self("from", "scratch", what="buildah from scratch").strip()
        try:
            self("add", container, str(content), destination, what=f"adding to {name}")
            self("config", *config, container, what=f"configuring {name}")
            self("commit", "--quiet", container, name, what=f"committing {name}")
        finally:
            subprocess.run([*self.base, "rm", container], capture_output=True, check=False)

    def label(self, name: str, key: str) -> str | None:
        """A label of image ``name``; None if there is no such image or label."""
        if not self.exists(name):
            return None
        output = self("inspect", "--type=image", name, what=f"inspecting {name}")
        labels = json.loads(output)["OCIv1"]["config"].get("Labels") or {}
        value = labels.get(key)
        return str(value) if value is not None else None

    def exists(self, name: str) -> bool:
        result = subprocess.run(
            [*self.base, "inspect", "--type=image", name], capture_output=True, check=False
        )
        return result.returncode == 0


def base_key() -> str:
    """Changes whenever the recipe of the base changes (suite, mirrors, packages, options)."""
    recipe = json.dumps([DEBIAN_SUITE, DEBIAN_MIRRORS, BASE_PACKAGES, BASE_DPKG_OPTIONS])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def base_name() -> str:
    return f"localhost/gto-python-base:3.11-{DEBIAN_SUITE}-{base_key()}"


def build_base(buildah: Buildah) -> str:
    """The Python base assembled from Debian packages (mmdebstrap), once per recipe."""
    name = base_name()
    if buildah.exists(name):
        return name
    started = time.monotonic()
    _progress(f"assembling {name} from Debian packages with mmdebstrap (once per recipe)")
    with tempfile.TemporaryDirectory(prefix="gto-image-base-") as scratch:
        tarball = Path(scratch) / "rootfs.tar"
        _run(
            [
                "mmdebstrap",
                "--mode=root",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                *(f"--dpkgopt={option}" for option in BASE_DPKG_OPTIONS),
                DEBIAN_SUITE,
                str(tarball),
                *DEBIAN_MIRRORS,
            ],
            "mmdebstrap",
            env={**os.environ, "SOURCE_DATE_EPOCH": "0"},
        )
        # What the public python image sets: a UTF-8 locale and `python3` as command.
        buildah.commit_scratch(
            name,
            tarball,
            "/",
            [
                "--env=LANG=C.UTF-8",
                "--env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                '--cmd=["python3"]',
            ],
        )
    _progress(f"base {name} in {time.monotonic() - started:.0f} s")
    return name


# The Dockerfile target each image of the repository is built from.
DOCKERFILE_TARGETS = {OPERATOR: "operator", SANDBOX: "sandbox"}

# What the image is built from: the Dockerfile and its context (.dockerignore's allow-list).
_CONTEXT_FILES = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md")
_CONTEXT_FOLDERS = ("operator", "sandbox")
_CONTEXT_SKIPPED = ("__pycache__", ".egg-info", "sandbox/build")
SOURCE_LABEL = "dev.google-token-operator.source-digest"


def source_digest(base: str, target: str, root: Path | None = None) -> str:
    """A digest of everything a build of ``root`` (this checkout) reads; equal digests make
    equal images."""
    root = root or repo_root()
    files = [root / name for name in _CONTEXT_FILES]
    for folder in _CONTEXT_FOLDERS:
        files += sorted(
            path
            for path in (root / folder).rglob("*")
            if path.is_file()
            and path.suffix != ".pyc"
            and not any(skip in path.relative_to(root).as_posix() for skip in _CONTEXT_SKIPPED)
        )
    digest = hashlib.sha256(f"{base}\0{target}\0".encode())
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def build_dockerfile(
    buildah: Buildah, base: str, image: Image, target: str, root: Path | None = None
) -> None:
    """`buildah bud` of the Dockerfile of ``root`` (this checkout, or another release's tree),
    exactly as `docker build` would run it.

    Skipped when the image was built from the same sources. buildah's own layer cache cannot
    tell: it never reuses a RUN step that had a --volume, and the build needs one (below).
    """
    root = root or repo_root()
    source = source_digest(base, target, root)
    if buildah.label(image.local_name, SOURCE_LABEL) == source:
        _progress(f"{image.local_name} is up to date (sources unchanged)")
        return
    started = time.monotonic()
    args = [
        "bud",
        "--layers",  # reuse unchanged steps, as Docker's build cache does
        "--pull=never",
        # RUN steps reach PyPI like `docker build` does: through the host's network...
        "--network=host",
        f"--build-arg=PYTHON_IMAGE={base}",
        f"--target={target}",
        f"--tag={image.local_name}",
        f"--label={SOURCE_LABEL}={source}",
    ]
    # ...and trust what the host trusts (a TLS-inspecting proxy's CA, say). Mounted for the
    # RUN steps only: nothing of it lands in a layer.
    host_bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if host_bundle.is_file():
        args.append(f"--volume={host_bundle}:{host_bundle}:ro")
    buildah(*args, str(root), what=f"building {image.local_name} (Dockerfile --target {target})")
    _progress(f"built {image.local_name} in {time.monotonic() - started:.0f} s")


def pause_source() -> Path:
    """Kubernetes' pause.c from the pinned k8s.io/kubernetes module (downloaded if needed)."""
    output = _run(
        ["go", "mod", "download", "-json", "k8s.io/kubernetes"],
        "locating k8s.io/kubernetes",
        cwd=repo_root() / MODULE_SUBDIR,
        env={**os.environ, "GOWORK": "off"},
    )
    source = Path(json.loads(output)["Dir"]) / "build" / "pause" / "linux" / "pause.c"
    if not source.is_file():
        raise ImageBuildError(f"no {source} in the pinned k8s.io/kubernetes module")
    return source


def build_pause(buildah: Buildah) -> None:
    """The sandbox image: a static pause binary, as Kubernetes' build/pause/Makefile makes it."""
    if buildah.exists(PAUSE.local_name):
        return
    with tempfile.TemporaryDirectory(prefix="gto-image-pause-") as scratch:
        binary = Path(scratch) / "pause"
        _run(
            [
                "gcc",
                "-Os",
                "-Wall",
                "-Werror",
                "-static",
                f"-DVERSION=v{PAUSE_VERSION}-gto",
                "-o",
                str(binary),
                str(pause_source()),
            ],
            "compiling pause.c",
        )
        buildah.commit_scratch(
            PAUSE.local_name, binary, "/pause", ['--entrypoint=["/pause"]', "--user=65535:65535"]
        )


def export(buildah: Buildah, image: Image) -> Path:
    """A docker-archive tar carrying the node's name for the image (``ctr images import``).

    Written again only when the image changed (its id is kept beside the archive).
    """
    target = archive(image)
    target.parent.mkdir(parents=True, exist_ok=True)
    image_id = buildah(
        "images",
        "--noheading",
        "--no-trunc",
        "--format={{.ID}}",
        image.local_name,
        what=f"looking up {image.local_name}",
    ).strip()
    id_file = target.with_suffix(".id")
    if target.is_file() and id_file.is_file() and id_file.read_text() == image_id:
        return target
    partial = target.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    buildah(
        "push",
        "--quiet",
        image.local_name,
        f"docker-archive:{partial}:{_qualified(image.node_name)}",
        what=f"exporting {image.local_name}",
    )
    partial.rename(target)
    id_file.write_text(image_id)
    return target


def _qualified(name: str) -> str:
    """The fully qualified reference containerd stores (docker.io/library/ for bare names)."""
    first = name.split("/", 1)[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        return name
    return f"docker.io/{name}" if "/" in name else f"docker.io/library/{name}"


@contextlib.contextmanager
def _cache_buildah(tools: Sequence[str]) -> Iterator[Buildah]:
    """buildah on the cache's storage, under its lock, once ``tools`` and root are there."""
    for tool in tools:
        if shutil.which(tool) is None:
            raise ImageBuildError(f"{tool} is not installed; run `make node-deps` (apt-get)")
    if os.geteuid() != 0:
        raise ImageBuildError("the daemonless build needs root (mmdebstrap --mode=root, buildah)")
    root = cache_root() / "containers"
    root.mkdir(parents=True, exist_ok=True)
    buildah = Buildah(root)
    with exclusive_lock(root / ".lock"):
        yield buildah
        # Superseded layers of earlier builds; vfs stores every layer in full.
        subprocess.run([*buildah.base, "rmi", "--prune"], capture_output=True, check=False)


def build_all() -> dict[str, int]:
    """Build the base, the two Dockerfile targets and pause; export them for the node.

    Returns the node's image name -> its archive's size in bytes (the uncompressed layers).
    """
    sizes: dict[str, int] = {}
    with _cache_buildah(("buildah", "mmdebstrap", "gcc", "go")) as buildah:
        base = build_base(buildah)
        buildah("tag", base, PYTHON.local_name, what="tagging the base")
        for image, target in DOCKERFILE_TARGETS.items():
            build_dockerfile(buildah, base, image, target)
        build_pause(buildah)
        for image in NODE_IMAGES:
            export(buildah, image)
            sizes[image.node_name] = archive(image).stat().st_size
            if image in DOCKERFILE_TARGETS:
                _source_file(image).write_text(source_digest(base, DOCKERFILE_TARGETS[image]))
    return sizes


def export_operator_oci(destination: Path, reference: str) -> None:
    """The operator's image as an OCI archive whose image is named ``reference``.

    The very image the node tier runs: built the same way (skipped when its sources are
    unchanged), so a release costs one export when the node images are up to date.
    """
    with _cache_buildah(("buildah", "mmdebstrap")) as buildah:
        base = build_base(buildah)
        build_dockerfile(buildah, base, OPERATOR, DOCKERFILE_TARGETS[OPERATOR])
        destination.unlink(missing_ok=True)
        buildah(
            "push",
            "--quiet",
            OPERATOR.local_name,
            f"oci-archive:{destination}:{reference}",
            what=f"exporting {OPERATOR.local_name} as {reference}",
        )


def release_image(commit: str) -> Image:
    """The operator image of an earlier release, named by its commit (never :latest)."""
    tag = f"release-{commit[:12]}"
    return Image(tag, f"localhost/google-token-operator:{tag}", f"google-token-operator:{tag}")


def build_release_image(tree: Path, commit: str) -> Path:
    """The operator image of the release whose sources are ``tree`` (its own Dockerfile, on the
    same base), exported for the node: the archive's path. Built once per commit."""
    image = release_image(commit)
    with _cache_buildah(("buildah", "mmdebstrap")) as buildah:
        base = build_base(buildah)
        build_dockerfile(buildah, base, image, DOCKERFILE_TARGETS[OPERATOR], tree)
        return export(buildah, image)


def _source_file(image: Image) -> Path:
    """The source digest the archive of ``image`` was built from."""
    return archive(image).with_suffix(".source")


def ensure_node_images() -> dict[Image, Path]:
    """The archives the node imports; `make image` builds them.

    Refused when the operator's or the sandbox's sources changed since: a test would otherwise
    run yesterday's operator and pass.
    """
    missing = [image for image in NODE_IMAGES if not archive(image).is_file()]
    if missing:
        raise ImageBuildError(
            f"no image archive for {', '.join(i.node_name for i in missing)} in {images_dir()}: "
            "run `make image` first"
        )
    stale = [
        image
        for image, target in DOCKERFILE_TARGETS.items()
        if not _source_file(image).is_file()
        or _source_file(image).read_text() != source_digest(base_name(), target)
    ]
    if stale:
        raise ImageBuildError(
            f"the image archive of {', '.join(i.node_name for i in stale)} is older than the "
            "sources: run `make image` (or `make node-images`) again"
        )
    return {image: archive(image) for image in NODE_IMAGES}
