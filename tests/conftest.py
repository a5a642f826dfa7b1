"""Fixtures shared by every tier live in tests/fixtures/; this file only wires them in."""

pytest_plugins = [
    "fixtures.cluster",
    "fixtures.sandbox",
    "fixtures.operator",
    "fixtures.installs",
    "fixtures.browser",
    "fixtures.callback",
    "fixtures.chaos",
    "fixtures.workers",
    "fixtures.receiver",
]
