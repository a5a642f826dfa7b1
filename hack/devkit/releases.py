"""The previous release: the commit of this repository that upgrades are tested from.

Named here only. Its files are read from git history (`git show`), so a clone with history is
needed (CI clones main in full).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

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
