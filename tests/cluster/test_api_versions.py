"""The two API versions on the real API server: v1 stored, v1alpha1 still served and deprecated,
and `migrate-storage` moving objects stored by the previous release to v1, read back from etcd
itself."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from devkit import ControlPlane, ensure_binaries
from devkit.releases import previous_release_file

GROUP = "google-token-operator.dev"
REPO = Path(__file__).resolve().parents[2]
CLIENT_SPEC = {"credentialsSecretRef": {"name": "acme-oauth"}, "loginHint": "owner@example.com"}
BRANCH_SPEC = {"clientRef": {"name": "acme"}, "accountId": "123", "locationId": "456"}
# Bench-sized: as many objects as `make bench`'s largest run, half of each kind.
OBJECTS_PER_KIND = 500


def manifest(version: str, kind: str, namespace: str, name: str, spec: dict[str, Any]) -> str:
    return json.dumps(
        {
            "apiVersion": f"{GROUP}/{version}",
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )


def read_as(plane: ControlPlane, version: str, plural: str, namespace: str, name: str) -> Any:
    got = plane.kubectl("get", f"{plural}.{version}.{GROUP}", name, "-n", namespace, "-o", "json")
    return json.loads(got.stdout)


@pytest.mark.parametrize(
    ("written", "read", "kind", "spec"),
    [
        ("v1alpha1", "v1", "GoogleClient", CLIENT_SPEC),
        ("v1", "v1alpha1", "GoogleClient", CLIENT_SPEC),
        ("v1alpha1", "v1", "Branch", BRANCH_SPEC),
        ("v1", "v1alpha1", "Branch", BRANCH_SPEC),
    ],
)
def test_each_version_reads_what_the_other_wrote(
    control_plane: ControlPlane,
    crds: None,
    namespace: str,
    written: str,
    read: str,
    kind: str,
    spec: dict[str, Any],
) -> None:
    plural = "googleclients" if kind == "GoogleClient" else "branches"
    applied = control_plane.kubectl(
        "apply", "-f", "-", input=manifest(written, kind, namespace, "subject", spec)
    )
    warning = f"{GROUP}/v1alpha1 {kind} is deprecated; use {GROUP}/v1 {kind}"
    assert (warning in applied.stderr) == (written == "v1alpha1"), applied.stderr

    as_written = read_as(control_plane, written, plural, namespace, "subject")
    as_read = read_as(control_plane, read, plural, namespace, "subject")
    assert as_read["apiVersion"] == f"{GROUP}/{read}"
    assert json.dumps(as_read["spec"], sort_keys=True) == json.dumps(
        as_written["spec"], sort_keys=True
    )
    assert as_read["metadata"]["uid"] == as_written["metadata"]["uid"]


# --- migrate-storage, on an API server of its own that starts at the previous release ----------


@pytest.fixture(scope="module")
def previous_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A new cluster with the previous release's CRDs (v1alpha1 only, stored)."""
    folder = tmp_path_factory.mktemp("previous-crds")
    for name in ("googleclients", "branches"):
        (folder / f"{name}.yaml").write_text(previous_release_file(f"crds/{name}.yaml"))
    with ControlPlane(ensure_binaries()) as plane:
        apply_crds(plane, folder)
        yield plane


def apply_crds(plane: ControlPlane, folder: Path) -> None:
    plane.kubectl("apply", "-f", str(folder))
    plane.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        f"crd/googleclients.{GROUP}",
        f"crd/branches.{GROUP}",
    )


def stored(plane: ControlPlane, plural: str) -> dict[str, str]:
    """What etcd holds for every object of a kind: its name -> the apiVersion it is stored at."""
    prefix = f"/registry/{GROUP}/{plural}/".encode()
    end = prefix[:-1] + bytes([prefix[-1] + 1])
    answer = requests.post(
        f"{plane.etcd_url}/v3/kv/range",
        json={
            "key": base64.b64encode(prefix).decode(),
            "range_end": base64.b64encode(end).decode(),
        },
        timeout=30,
    )
    answer.raise_for_status()
    found = {}
    for kv in answer.json().get("kvs", []):
        body = json.loads(base64.b64decode(kv["value"]))
        found[body["metadata"]["name"]] = body["apiVersion"]
    return found


def stored_versions(plane: ControlPlane, plural: str) -> list[str]:
    crd = plane.kubectl("get", "crd", f"{plural}.{GROUP}", "-o", "json")
    return list(json.loads(crd.stdout)["status"]["storedVersions"])


def migrate(plane: ControlPlane, kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "google_token_operator", "migrate-storage"],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def without_branch_writes(plane: ControlPlane, folder: Path) -> Path:
    """A kubeconfig for a ServiceAccount with the shipped rights minus updating Branches:
    its run stops halfway, deterministically, at the first Branch."""
    role = yaml.safe_load(
        (REPO / "manifests/components/migrate-storage/clusterrole.yaml").read_text()
    )
    rules = role["rules"]
    for rule in rules:
        if "branches" in rule.get("resources", []):
            rule["verbs"] = [verb for verb in rule["verbs"] if verb != "update"]
    plane.kubectl("create", "namespace", "migration")
    plane.kubectl("create", "serviceaccount", "migrator", "-n", "migration")
    role["metadata"] = {"name": "migrator"}
    plane.kubectl("apply", "-f", "-", input=json.dumps(role))
    plane.kubectl(
        "create",
        "clusterrolebinding",
        "migrator",
        "--clusterrole=migrator",
        "--serviceaccount=migration:migrator",
    )
    token = plane.mint_service_account_token("migration", "migrator")
    return plane.write_kubeconfig(folder / "migrator", token, "migrator")


def test_migrate_storage_moves_every_object_to_v1_resumes_and_is_idempotent(
    previous_plane: ControlPlane, tmp_path: Path
) -> None:
    plane = previous_plane
    plane.kubectl("create", "namespace", "reviews")
    objects = [
        json.loads(manifest("v1alpha1", kind, "reviews", f"{kind.lower()}-{index}", spec))
        for kind, spec in (("GoogleClient", CLIENT_SPEC), ("Branch", BRANCH_SPEC))
        for index in range(OBJECTS_PER_KIND)
    ]
    plane.kubectl(
        "create", "-f", "-", "-o", "name",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}),
    )  # fmt: skip
    for plural in ("googleclients", "branches"):
        assert set(stored(plane, plural).values()) == {f"{GROUP}/v1alpha1"}
        assert len(stored(plane, plural)) == OBJECTS_PER_KIND

    apply_crds(plane, REPO / "crds")
    assert stored_versions(plane, "googleclients") == ["v1alpha1", "v1"]

    # Interrupted halfway: Branches cannot be written, so the run stops after GoogleClients.
    halfway = migrate(plane, without_branch_writes(plane, tmp_path))
    assert halfway.returncode == 1, halfway.stdout + halfway.stderr
    assert "branches" in halfway.stderr and "Forbidden" in halfway.stderr, halfway.stderr
    assert set(stored(plane, "googleclients").values()) == {f"{GROUP}/v1"}
    assert stored_versions(plane, "googleclients") == ["v1"]
    assert set(stored(plane, "branches").values()) == {f"{GROUP}/v1alpha1"}
    assert stored_versions(plane, "branches") == ["v1alpha1", "v1"]

    # Run again: completes, rewriting only what is left.
    started = time.monotonic()
    rest = migrate(plane, plane.kubeconfig)
    took = time.monotonic() - started
    assert rest.returncode == 0, rest.stdout + rest.stderr
    assert f"googleclients.{GROUP}: stored as v1 only; nothing to do" in rest.stdout
    assert f"rewrote {OBJECTS_PER_KIND} at v1" in rest.stdout, rest.stdout
    for plural in ("googleclients", "branches"):
        assert stored_versions(plane, plural) == ["v1"]
        assert set(stored(plane, plural).values()) == {f"{GROUP}/v1"}
        assert len(stored(plane, plural)) == OBJECTS_PER_KIND

    # A third run writes nothing.
    versions_before = plane.kubectl("get", "googleclients,branches", "-A", "-o", "json").stdout
    again = migrate(plane, plane.kubeconfig)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("nothing to do") == 2, again.stdout
    assert "rewrote" not in again.stdout
    versions_after = plane.kubectl("get", "googleclients,branches", "-A", "-o", "json").stdout
    assert versions_after == versions_before

    # The previous release's objects read as v1, with their specs as written.
    client = read_as(plane, "v1", "googleclients", "reviews", "googleclient-7")
    assert client["apiVersion"] == f"{GROUP}/v1"
    assert client["spec"]["loginHint"] == CLIENT_SPEC["loginHint"]
    print(
        f"migrate-storage: {OBJECTS_PER_KIND} Branches rewritten in {took:.1f} s "
        f"after {OBJECTS_PER_KIND} GoogleClients in the interrupted run\n"
        f"{halfway.stdout}{rest.stdout}"
    )
