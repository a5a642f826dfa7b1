"""migrate-storage's pure rules: the API server's storage-version fingerprint, and which
stored versions are left to drop."""

from __future__ import annotations

from typing import Any

import pytest

from google_token_operator.commands.migrate_storage import (
    MigrationError,
    storage_version_hash,
    versions_to_drop,
)


def test_storage_version_hash_matches_the_api_servers_for_known_kinds() -> None:
    # Values a kube-apiserver publishes in discovery (`kubectl get --raw /api/v1`).
    assert storage_version_hash("", "v1", "Pod") == "xPOwRZ+Yhw8="
    assert storage_version_hash("", "v1", "Secret") == "S6u1pOWzb84="


def crd(storage: str, stored: list[str]) -> dict[str, Any]:
    return {
        "metadata": {"name": "googleclients.google-token-operator.dev"},
        "spec": {
            "versions": [
                {"name": "v1", "storage": storage == "v1"},
                {"name": "v1alpha1", "storage": storage == "v1alpha1"},
            ]
        },
        "status": {"storedVersions": stored},
    }


def test_versions_left_to_drop() -> None:
    assert versions_to_drop(crd("v1", ["v1alpha1", "v1"])) == ("v1alpha1",)
    assert versions_to_drop(crd("v1", ["v1"])) == ()
    assert versions_to_drop(crd("v1", [])) == ()


def test_a_crd_that_does_not_store_v1_yet_is_refused_with_what_to_do() -> None:
    with pytest.raises(MigrationError, match="stores v1alpha1, not v1: apply this release's CRDs"):
        versions_to_drop(crd("v1alpha1", ["v1alpha1"]))
    with pytest.raises(MigrationError, match="stores no version"):
        versions_to_drop({"spec": {}, "status": {}})
