"""hack/devkit/release.py: the version in one place, refusals that name the fix, the bump.

The artifacts themselves are built on a real API server (tests/cluster/test_release.py) and
the image on the node tier (tests/node/test_image.py).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devkit import release
from devkit.release import COPIES, PYPROJECT, Artifacts, ReleaseError

REPO = Path(__file__).resolve().parents[2]


def test_the_tree_is_a_release_of_its_own_version() -> None:
    """pyproject.toml's copies (chart, overlay) and the CHANGELOG section follow it."""
    version = release.project_version(REPO)
    release.check_sources(REPO, version)
    assert {copy.read(REPO) for copy in COPIES} == {version}


def test_the_installed_package_reports_pyprojects_version() -> None:
    assert importlib.metadata.version("google-token-operator") == release.project_version(REPO)


@given(st.tuples(*[st.integers(0, 10**6)] * 3))
def test_every_major_minor_patch_is_a_release_version(parts: tuple[int, int, int]) -> None:
    version = ".".join(map(str, parts))
    assert release.checked_version(version) == version


@pytest.mark.parametrize(
    "version", ["v0.2.0", "0.2", "0.2.0.1", "01.2.3", "0.02.0", "0.2.0-rc.1", "0.2.0+abc", " 0.2.0"]
)
def test_anything_else_is_refused_naming_the_form(version: str) -> None:
    with pytest.raises(ReleaseError, match=r"MAJOR\.MINOR\.PATCH.*e\.g\. VERSION=0\.2\.0"):
        release.checked_version(version)


def test_a_missing_version_names_the_make_call() -> None:
    with pytest.raises(ReleaseError, match=r"make release VERSION=X\.Y\.Z"):
        release.checked_version("")


def copy_of_the_tree(folder: Path) -> Path:
    """The files the release reads and `prepare` writes, as in the checkout."""
    for path in (PYPROJECT.path, *(copy.path for copy in COPIES), release.CHANGELOG):
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / path, folder / path)
    return folder


def test_a_version_other_than_pyprojects_is_refused(tmp_path: Path) -> None:
    tree = copy_of_the_tree(tmp_path)
    with pytest.raises(ReleaseError) as refused:
        release.check_sources(tree, "99.0.0")
    message = str(refused.value)
    assert "pyproject.toml's version is" in message
    assert "make release-prepare VERSION=99.0.0" in message


def test_a_copy_out_of_step_is_named(tmp_path: Path) -> None:
    tree = copy_of_the_tree(tmp_path)
    version = release.project_version(tree)
    chart = tree / "charts/google-token-operator/Chart.yaml"
    chart.write_text(chart.read_text().replace(f'appVersion: "{version}"', 'appVersion: "9.9.9"'))
    with pytest.raises(ReleaseError, match=r"Chart\.yaml: appVersion is 9\.9\.9, not"):
        release.check_sources(tree, version)


def test_prepare_sets_every_copy_and_turns_unreleased_into_the_version(tmp_path: Path) -> None:
    tree = copy_of_the_tree(tmp_path)
    changelog = tree / release.CHANGELOG
    notes = "### Upgrade notes\n- Nothing to do.\n"
    changelog.write_text(f"# Changelog\n\n## Unreleased\n\n{notes}\n## 0.1.0\n\nFirst.\n")
    release.prepare(tree, "7.8.9")
    release.check_sources(tree, "7.8.9")
    text = changelog.read_text()
    assert f"## 7.8.9\n\n{notes}" in text
    assert "## Unreleased" not in text
    # Only the version lines changed: the overlay's comments and other keys are intact.
    overlay = (tree / "manifests/overlays/production/kustomization.yaml").read_text()
    original = (REPO / "manifests/overlays/production/kustomization.yaml").read_text()
    assert overlay.splitlines()[:10] == original.splitlines()[:10]
    assert "newTag: 7.8.9" in overlay
    # A second prepare of the same version has nothing to turn into it.
    with pytest.raises(ReleaseError, match=r"already has a '## 7\.8\.9' section"):
        release.prepare(tree, "7.8.9")


def test_prepare_without_an_unreleased_section_changes_nothing(tmp_path: Path) -> None:
    tree = copy_of_the_tree(tmp_path)
    changelog = tree / release.CHANGELOG
    changelog.write_text(changelog.read_text().replace("## Unreleased", "## Not yet"))
    before = {path: path.read_bytes() for path in tree.rglob("*") if path.is_file()}
    with pytest.raises(ReleaseError, match="no '## Unreleased' section"):
        release.prepare(tree, "7.8.9")
    assert {path: path.read_bytes() for path in tree.rglob("*") if path.is_file()} == before


def git(folder: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
    )


def test_uncommitted_changes_are_refused_naming_them(tmp_path: Path) -> None:
    tree = copy_of_the_tree(tmp_path)
    git(tree, "init", "--quiet")
    git(tree, "add", ".")
    git(tree, "commit", "--quiet", "-m", "release")
    release.check_committed(tree)
    (tree / "pyproject.toml").write_text("changed\n")
    with pytest.raises(ReleaseError, match=r"uncommitted changes \(pyproject\.toml\)"):
        release.check_committed(tree)


def test_sums_are_checked_by_sha256sum(tmp_path: Path) -> None:
    artifacts = Artifacts(tmp_path, "1.2.3")
    for number, path in enumerate(artifacts.summed()):
        path.write_bytes(b"artifact %d" % number)
    release.write_sums(artifacts)
    lines = artifacts.sums.read_text().splitlines()
    assert lines[1] == (
        f"{hashlib.sha256(b'artifact 1').hexdigest()}  google-token-operator-1.2.3.tgz"
    )
    checked = subprocess.run(
        ["sha256sum", "--check", "--strict", release.SUMS],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    artifacts.install.write_bytes(b"tampered")
    assert subprocess.run(["sha256sum", "--check", release.SUMS], cwd=tmp_path).returncode == 1
