"""The previous release: the commit of this repository that upgrades are tested from.

Named here only. Its files are read from git history (`git show`), so a clone with history is
needed (CI clones main in full).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from .binaries import cache_root

# 0.1.0: the last commit whose CRDs served and stored only v1alpha1.
PREVIOUS_RELEASE = "e19c0642dc5058503b1ca933c3cc8c7479a6e2a2"
REPO = Path(__file__).resolve().parents[2]


def previous_release_file(path: str) -> str:
    """The text of `path` (relative to the repository root) as the previous release had it."""
    shown = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{PREVIOUS_RELEASE}:{path}"],
        capture_output=True,
        text=True,
    )
    if shown.returncode:
        raise RuntimeError(
            f"cannot read {path} of the previous release {PREVIOUS_RELEASE[:12]} from git "
            f"history (a shallow clone? run `git fetch --unshallow`): {shown.stderr.strip()}"
        )
    return shown.stdout


def previous_release_tree() -> Path:
    """The previous release's whole tree (`git archive`), extracted once into the cache.

    Links inside it (the chart's files/crds, say) resolve within the tree, as in a checkout.
    """
    tree = cache_root() / "releases" / PREVIOUS_RELEASE
    if tree.is_dir():
        return tree
    tree.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{PREVIOUS_RELEASE[:12]}-", dir=tree.parent))
    archived = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", PREVIOUS_RELEASE],
        capture_output=True,
    )
    if archived.returncode:
        shutil.rmtree(partial)
        raise RuntimeError(
            f"cannot archive the previous release {PREVIOUS_RELEASE[:12]} from git history "
            f"(a shallow clone? run `git fetch --unshallow`): {archived.stderr.decode().strip()}"
        )
    with tarfile.open(fileobj=io.BytesIO(archived.stdout)) as tar:
        tar.extractall(partial, filter="tar")
    try:
        partial.rename(tree)
    except OSError:  # another process extracted it meanwhile: the same content
        shutil.rmtree(partial)
    return tree
