"""``python -m devkit.release prepare|build VERSION``: `make release-prepare` and `make release`.

The version lives in one place, pyproject.toml's ``version``: the wheel carries it, so the
image's ``google-token-operator version`` reports it. The chart's ``version``/``appVersion``
and the production overlay's image tag are copies that ``prepare`` writes with it (a unit test
keeps them in step). ``build`` stamps nothing: it refuses a VERSION other than pyproject.toml's,
a tree with uncommitted changes, or a CHANGELOG without the release's section, so the artifacts
are always those of a commit (docs/design/2026-12-07-releases.md).

``build`` writes into ``dist/`` (emptied first): the operator image as an OCI archive, the
packaged chart, the CRD bundle, ``install.yaml`` (the production overlay in one file) and
``SHA256SUMS`` over them.
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
import tomllib
from collections.abc import Sequence
from pathlib import Path

from .binaries import BinariesMissingError, ensure_binaries, repo_root
from .gotools import HELM, ensure_tool
from .images import ImageBuildError, export_operator_oci

PROJECT = "google-token-operator"
# MAJOR.MINOR.PATCH without leading zeros (semver.org's core). No pre-release or build part:
# the same string must be the Python package's version (PEP 440 spells "1.0.0-rc.1" "1.0.0rc1"),
# the chart's and the image tag (which allows no "+").
SEMVER = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")
CHART = Path("charts/google-token-operator")
PRODUCTION = Path("manifests/overlays/production")
CHANGELOG = Path("CHANGELOG.md")
UNRELEASED = "## Unreleased"
SUMS = "SHA256SUMS"
CRDS = "crds.yaml"
INSTALL = "install.yaml"
GUIDE = "docs/development/releasing.md"


class ReleaseError(RuntimeError):
    """Why no release can be made; the message names the file or value and the fix."""


@dataclasses.dataclass(frozen=True)
class VersionCopy:
    """One place that repeats pyproject.toml's version: a file and the line pattern holding it.

    ``pattern`` has three groups: what precedes the version, the version, what follows.
    """

    path: Path
    what: str
    pattern: re.Pattern[str]

    def read(self, repo: Path) -> str:
        match = self.pattern.search((repo / self.path).read_text())
        if match is None:
            raise ReleaseError(f"{self.path}: no {self.what} line found")
        return match.group(2)

    def write(self, repo: Path, version: str) -> None:
        text = (repo / self.path).read_text()
        (repo / self.path).write_text(
            self.pattern.sub(lambda m: f"{m.group(1)}{version}{m.group(3)}", text, count=1)
        )


PYPROJECT = VersionCopy(
    Path("pyproject.toml"), "version", re.compile(r'^(version = ")([^"]*)(")$', re.M)
)
COPIES = (
    VersionCopy(CHART / "Chart.yaml", "version", re.compile(r"^(version: )(\S*)()$", re.M)),
    VersionCopy(
        CHART / "Chart.yaml", "appVersion", re.compile(r'^(appVersion: ")([^"]*)(")$', re.M)
    ),
    VersionCopy(
        PRODUCTION / "kustomization.yaml",
        "image newTag",
        re.compile(r"^(\s+newTag: )(\S*)()$", re.M),
    ),
)


@dataclasses.dataclass(frozen=True)
class Artifacts:
    """The files of one release in ``dist``, named as users of Helm and kubectl expect."""

    dist: Path
    version: str

    @property
    def image(self) -> Path:
        return self.dist / f"{PROJECT}-{self.version}-{_architecture()}.oci.tar"

    @property
    def chart(self) -> Path:
        return self.dist / f"{PROJECT}-{self.version}.tgz"

    @property
    def crds(self) -> Path:
        return self.dist / CRDS

    @property
    def install(self) -> Path:
        return self.dist / INSTALL

    @property
    def sums(self) -> Path:
        return self.dist / SUMS

    @property
    def image_reference(self) -> str:
        return f"{PROJECT}:{self.version}"

    def summed(self) -> tuple[Path, ...]:
        return (self.image, self.chart, self.crds, self.install)


def _architecture() -> str:
    """The image's architecture as OCI names it (the machine that built it)."""
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def checked_version(text: str) -> str:
    if not text:
        raise ReleaseError(f"no version given: `make release VERSION=X.Y.Z` (see {GUIDE})")
    if SEMVER.fullmatch(text) is None:
        raise ReleaseError(
            f"VERSION={text!r} is not a release version: MAJOR.MINOR.PATCH, digits without "
            "leading zeros and no pre-release or build part, e.g. VERSION=0.2.0 (the same "
            "string becomes the Python package's, the chart's and the image tag's version)"
        )
    return text


def project_version(repo: Path) -> str:
    """pyproject.toml's version: the one place the version lives."""
    return str(tomllib.loads((repo / PYPROJECT.path).read_text())["project"]["version"])


def check_sources(repo: Path, version: str) -> None:
    """The tree is that of release ``version``: pyproject.toml, its copies, the CHANGELOG."""
    declared = project_version(repo)
    if declared != version:
        raise ReleaseError(
            f"VERSION={version} but pyproject.toml's version is {declared}: the version lives "
            f"there. Run `make release-prepare VERSION={version}`, commit, then release "
            f"(see {GUIDE})"
        )
    for copy in COPIES:
        found = copy.read(repo)
        if found != version:
            raise ReleaseError(
                f"{copy.path}: {copy.what} is {found}, not pyproject.toml's {version}: run "
                f"`make release-prepare VERSION={version}` and commit"
            )
    headings = (repo / CHANGELOG).read_text().splitlines()
    if f"## {version}" not in headings:
        raise ReleaseError(
            f"{CHANGELOG} has no '## {version}' section: write the release's changes and "
            f"upgrade notes under '{UNRELEASED}', then `make release-prepare VERSION={version}`"
        )


def check_committed(repo: Path) -> None:
    """Nothing uncommitted: the artifacts are those of HEAD, which anyone can build again."""
    status = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain"],
        capture_output=True,
        text=True,
        check=False,
    )
    if status.returncode:
        raise ReleaseError(
            f"git status failed (a release is built from a git checkout): {status.stderr}"
        )
    if status.stdout.strip():
        changed = ", ".join(line[3:] for line in status.stdout.splitlines()[:5])
        raise ReleaseError(
            f"the checkout has uncommitted changes ({changed}): commit or stash them; a "
            "release is built from a commit"
        )


def prepare(repo: Path, version: str) -> None:
    """Set ``version`` in pyproject.toml and its copies; CHANGELOG's Unreleased becomes it."""
    changelog = repo / CHANGELOG
    lines = changelog.read_text().splitlines(keepends=True)
    if f"## {version}\n" in lines:
        raise ReleaseError(f"{CHANGELOG} already has a '## {version}' section")
    if f"{UNRELEASED}\n" not in lines:
        raise ReleaseError(
            f"{CHANGELOG} has no '{UNRELEASED}' section: write the release's changes and "
            "upgrade notes there first"
        )
    copies = (PYPROJECT, *COPIES)
    for copy in copies:
        copy.read(repo)  # every copy found before any file is written
    lines[lines.index(f"{UNRELEASED}\n")] = f"## {version}\n"
    changelog.write_text("".join(lines))
    for copy in copies:
        copy.write(repo, version)


def _run(argv: Sequence[str | Path], what: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(arg) for arg in argv], capture_output=True, text=True, check=False, env=env
    )
    if result.returncode:
        raise ReleaseError(f"{what} failed (exit {result.returncode}):\n{result.stderr.strip()}")
    return result.stdout


def write_manifests(repo: Path, artifacts: Artifacts, kubectl: Path, helm: Path) -> None:
    """The CRD bundle, install.yaml and the packaged chart (chart version = appVersion)."""
    version = artifacts.version
    crds = _run([kubectl, "kustomize", repo / "crds"], "kubectl kustomize crds")
    artifacts.crds.write_text(
        f"# {PROJECT} {version}: the CustomResourceDefinitions (also in {INSTALL}).\n"
        f"#   kubectl apply --server-side -f {CRDS}\n{crds}"
    )
    install = _run([kubectl, "kustomize", repo / PRODUCTION], f"kubectl kustomize {PRODUCTION}")
    artifacts.install.write_text(
        f"# {PROJECT} {version}: the production install in one file ({PRODUCTION}), for\n"
        "#   kubectl apply -f install.yaml\n"
        f"# Runs the image {artifacts.image_reference} (push it to your registry, name it in the\n"
        "# operator Deployment and its CALLBACK_IMAGE) and reads CALLBACK_URL, the callback's\n"
        "# public URL: set both before applying (docs/guides/install.md).\n"
        f"{install}"
    )
    with tempfile.TemporaryDirectory(prefix="gto-release-helm-") as home:
        # helm with folders of its own: nothing of the user's repositories or plugins.
        isolated = {
            f"HELM_{kind}_HOME": f"{home}/{kind.lower()}" for kind in ("CONFIG", "CACHE", "DATA")
        }
        _run(
            [
                helm,
                "package",
                repo / CHART,
                "--version",
                version,
                "--app-version",
                version,
                "--destination",
                artifacts.dist,
            ],
            "helm package",
            env={**os.environ, **isolated},
        )


def write_sums(artifacts: Artifacts) -> None:
    """SHA256SUMS in sha256sum's format, so `sha256sum -c SHA256SUMS` checks a download."""
    lines = [
        f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n"
        for path in artifacts.summed()
    ]
    artifacts.sums.write_text("".join(lines))


def build(repo: Path, version: str) -> Artifacts:
    """Every artifact of release ``version`` into ``repo/dist`` (emptied first)."""
    check_sources(repo, version)
    check_committed(repo)
    artifacts = Artifacts(repo / "dist", version)
    shutil.rmtree(artifacts.dist, ignore_errors=True)
    artifacts.dist.mkdir()
    kubectl = ensure_binaries() / "kubectl"
    write_manifests(repo, artifacts, kubectl, ensure_tool(HELM))
    export_operator_oci(artifacts.image, artifacts.image_reference)
    write_sums(artifacts)
    return artifacts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devkit.release",
        description="Prepare (bump) or build a release; see docs/development/releasing.md.",
    )
    parser.add_argument("step", choices=("prepare", "build"))
    parser.add_argument("version", metavar="VERSION", help="MAJOR.MINOR.PATCH, e.g. 0.2.0")
    args = parser.parse_args(argv)
    repo = repo_root()
    started = time.monotonic()
    try:
        version = checked_version(args.version)
        if args.step == "prepare":
            prepare(repo, version)
            print(f"{version} set: review `git diff`, commit, `make release VERSION={version}`")
            return 0
        artifacts = build(repo, version)
    except (ReleaseError, BinariesMissingError, ImageBuildError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for path in (*artifacts.summed(), artifacts.sums):
        print(f"{path.relative_to(repo)}  {path.stat().st_size:,} bytes")
    print(f"release {version} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
