"""Fixtures shared by every tier live in tests/fixtures/; this file only wires them in."""

import os
from pathlib import Path

# The package may be installed from its wheel (as `make test` does); the local control plane
# still builds from this checkout's pinned Go modules.
os.environ.setdefault("GTO_REPO_ROOT", str(Path(__file__).resolve().parents[1]))

pytest_plugins = [
    "fixtures.cluster",
    "fixtures.sandbox",
    "fixtures.operator",
    "fixtures.browser",
    "fixtures.callback",
]
