"""`make release`'s manifests on real API servers: install.yaml installs exactly what the
production overlay does, the CRD bundle is install.yaml's CRDs, and `helm install` of the
packaged chart works and runs the release's image.

The artifacts are written by the release's own code (devkit.release.write_manifests) into a
temporary dist; the image archive is built and run on the node tier (tests/node/test_image.py).
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
import yaml

from devkit import ControlPlane, ensure_binaries, release
from devkit.release import Artifacts
from fixtures.installs import (
    OPERATOR,
    OPERATOR_NS,
    PRODUCTION,
    RELEASE,
    Doc,
    Helm,
    container,
    env_of,
    fresh_api_server,
    inventory,
    pick,
    render,
)
from fixtures.operator import REPO

VERSION = release.project_version(REPO)
IMAGE = f"google-token-operator:{VERSION}"


@pytest.fixture(scope="module")
def artifacts(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    written = Artifacts(tmp_path_factory.mktemp("dist"), VERSION)
    release.write_manifests(REPO, written, ensure_binaries() / "kubectl", helm.binary)
    return written


def documents(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_install_yaml_is_the_production_overlay_with_the_releases_image(
    control_plane: ControlPlane, artifacts: Artifacts
) -> None:
    installed = documents(artifacts.install)
    assert installed == render(control_plane, PRODUCTION)
    operator = container(pick(installed, "Deployment", OPERATOR)["spec"]["template"], "operator")
    assert operator["image"] == IMAGE
    assert env_of(operator)["CALLBACK_IMAGE"] == IMAGE
    crds = documents(artifacts.crds)
    assert {doc["kind"] for doc in crds} == {"CustomResourceDefinition"}
    assert crds == [doc for doc in installed if doc["kind"] == "CustomResourceDefinition"]


def test_applying_install_yaml_installs_the_production_overlays_objects(
    artifacts: Artifacts,
) -> None:
    with fresh_api_server() as plane:
        before = inventory(plane)
        applied = plane.kubectl("apply", "-f", str(artifacts.install), check=False)
        assert applied.returncode == 0, applied.stderr
        expected = {
            f"{doc['kind']} {doc['metadata'].get('namespace', '-')}/{doc['metadata']['name']}"
            for doc in render(plane, PRODUCTION)
        }
        # Exactly the overlay's objects were created. The API server adds objects of other
        # kinds (an APIService per CRD version, the Service's IPAddress, the namespace's root CA
        # ConfigMap) and the namespace's default ServiceAccount.
        kinds = {key.split()[0] for key in expected}
        created = {key for key in inventory(plane) - before if key.split()[0] in kinds} - {
            "ServiceAccount google-token-operator/default"
        }
        assert created == expected, (sorted(expected - created), sorted(created - expected))
        # What the cluster holds is what `kubectl apply -k` of the overlay would write.
        diff = plane.kubectl("diff", "-k", str(PRODUCTION), check=False)
        assert diff.returncode == 0, diff.stdout + diff.stderr


def test_helm_install_of_the_packaged_chart_runs_the_releases_image(
    artifacts: Artifacts, helm: Helm
) -> None:
    with tarfile.open(artifacts.chart) as packaged:
        member = packaged.extractfile("google-token-operator/Chart.yaml")
        assert member is not None
        chart = yaml.safe_load(member.read())
    assert (chart["version"], chart["appVersion"]) == (VERSION, VERSION)
    with fresh_api_server() as plane:
        installed = helm.run(
            "install",
            RELEASE,
            str(artifacts.chart),
            "--namespace",
            OPERATOR_NS,
            "--create-namespace",
            "--set",
            "callbackURL=https://consent.example.com/oauth2/callback",
            kubeconfig=plane.kubeconfig,
        )
        assert "STATUS: deployed" in installed.stdout, installed.stdout
        [listed] = json.loads(
            helm.run(
                "list", "--namespace", OPERATOR_NS, "-o", "json", kubeconfig=plane.kubeconfig
            ).stdout
        )
        assert (listed["status"], listed["chart"], listed["app_version"]) == (
            "deployed",
            f"google-token-operator-{VERSION}",
            VERSION,
        )
        deployment = json.loads(
            plane.kubectl("-n", OPERATOR_NS, "get", "deployment", OPERATOR, "-o", "json").stdout
        )
        operator = container(deployment["spec"]["template"], "operator")
        assert operator["image"].endswith(f":{VERSION}"), operator["image"]
        crds = plane.kubectl("get", "crd", "-o", "name").stdout.split()
        assert sorted(crds) == sorted(
            f"customresourcedefinition.apiextensions.k8s.io/{doc['metadata']['name']}"
            for doc in documents(artifacts.crds)
        )
