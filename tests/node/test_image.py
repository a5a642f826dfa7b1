"""The operator's image as it ships, run with runc: non-root, read-only root filesystem.

`make image` built it (buildah, from the repository's Dockerfile); here it is unpacked into an
OCI runtime bundle with umoci, which turns the image's own config (USER, ENTRYPOINT, ENV) into
the container's, and run as the Deployment runs it: root filesystem read-only, a tmpfs at /tmp
(the Deployment's emptyDir), no capabilities, the image's user. `run` starts against the test
session's API server and answers its probes. `make release`'s image archive is this image,
exported: it reports the release's version.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from node_support import Measurements, wait_until

from devkit import ControlPlane, images, release
from fixtures.operator import free_port

NON_ROOT = 10001
REPO = Path(__file__).resolve().parents[2]


def unpack(image: images.Image, folder: Path, measurements: Measurements) -> Path:
    """The image unpacked into an OCI runtime bundle (config.json + rootfs) in ``folder``."""
    archive = images.ensure_node_images()[image]
    measurements.record(
        f"{image.node_name} image size (uncompressed)", archive.stat().st_size / 1e6, "MB"
    )
    return unpack_archive(f"docker-archive:{archive}", folder)


def unpack_archive(source: str, folder: Path) -> Path:
    """The image at ``source`` (a skopeo transport:path) as an OCI runtime bundle in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    layout = f"{folder / 'oci'}:image"
    subprocess.run(["skopeo", "copy", "--quiet", source, f"oci:{layout}"], check=True)
    subprocess.run(
        ["umoci", "unpack", "--image", layout, str(folder / "bundle")],
        check=True,
        capture_output=True,
    )
    return folder / "bundle"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, measurements: Measurements) -> Path:
    return unpack(images.OPERATOR, tmp_path_factory.mktemp("operator"), measurements)


def as_the_deployment_runs_it(bundle: Path, args: list[str], env: dict[str, str]) -> None:
    """Rewrite config.json: read-only root, tmpfs /tmp, no capabilities, host network."""
    config: dict[str, Any] = json.loads((bundle / "config.json").read_text())
    config["root"]["readonly"] = True
    process = config["process"]
    process["args"] = args
    process["env"] = [*process["env"], *(f"{name}={value}" for name, value in env.items())]
    process["terminal"] = False
    process["noNewPrivileges"] = True
    process["capabilities"] = {kind: [] for kind in ("bounding", "effective", "permitted")}
    config["mounts"].append(
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}
    )
    # Host network: the test's API server listens on this machine's loopback.
    namespaces = config["linux"]["namespaces"]
    config["linux"]["namespaces"] = [ns for ns in namespaces if ns["type"] != "network"]
    (bundle / "config.json").write_text(json.dumps(config))


@contextlib.contextmanager
def container(bundle: Path, name: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        ["runc", "run", "--bundle", str(bundle), name],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        subprocess.run(["runc", "kill", name, "KILL"], capture_output=True, check=False)
        process.wait(30)
        subprocess.run(["runc", "delete", "--force", name], capture_output=True, check=False)


def test_the_image_runs_as_its_non_root_user(bundle: Path) -> None:
    config = json.loads((bundle / "config.json").read_text())
    # USER 10001:10001 of the Dockerfile, as the manifests' runAsUser/runAsGroup.
    assert config["process"]["user"]["uid"] == NON_ROOT
    assert config["process"]["user"]["gid"] == NON_ROOT
    assert config["process"]["args"] == ["google-token-operator", "run", "--all-namespaces"]
    # Nothing under the root filesystem belongs to that user: it could not change the code.
    owned = subprocess.run(
        ["find", str(bundle / "rootfs"), "-xdev", "-uid", str(NON_ROOT), "-print", "-quit"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert owned.stdout == ""


def test_help_on_a_read_only_root(bundle: Path) -> None:
    as_the_deployment_runs_it(bundle, ["google-token-operator", "--help"], {})
    with container(bundle, "gto-image-help") as process:
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    for command in ("run", "callback", "authorize"):
        assert command in output


def test_the_release_image_archive_reports_the_release_version(
    tmp_path: Path, measurements: Measurements
) -> None:
    """`make release`'s image: the node tier's operator image (no second build), exported as
    an OCI archive named google-token-operator:VERSION, runs `version` -> pyproject's."""
    version = release.project_version(REPO)
    artifacts = release.Artifacts(tmp_path, version)
    started = time.monotonic()
    images.export_operator_oci(artifacts.image, artifacts.image_reference)
    measurements.record("release image export (OCI archive)", time.monotonic() - started, "s")
    measurements.record("release image archive size", artifacts.image.stat().st_size / 1e6, "MB")
    index = json.loads(
        subprocess.run(
            ["tar", "-xOf", str(artifacts.image), "index.json"],
            capture_output=True,
            check=True,
        ).stdout
    )
    [manifest] = index["manifests"]
    assert manifest["annotations"]["org.opencontainers.image.ref.name"] == (
        f"google-token-operator:{version}"
    )
    bundle = unpack_archive(f"oci-archive:{artifacts.image}", tmp_path / "unpacked")
    as_the_deployment_runs_it(bundle, ["google-token-operator", "version"], {})
    with container(bundle, "gto-image-release-version") as process:
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert output.splitlines()[0] == f"google-token-operator {version}", output


def test_the_sandbox_image_starts_on_a_read_only_root(
    tmp_path: Path, measurements: Measurements
) -> None:
    sandbox = unpack(images.SANDBOX, tmp_path, measurements)
    config = json.loads((sandbox / "config.json").read_text())
    assert config["process"]["user"]["uid"] == NON_ROOT
    as_the_deployment_runs_it(sandbox, [*config["process"]["args"], "--help"], {})
    with container(sandbox, "gto-image-sandbox") as process:
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "--token-lifetime" in output


def test_run_starts_and_answers_its_probes(
    bundle: Path, control_plane: ControlPlane, tmp_path: Path
) -> None:
    control_plane.kubectl("apply", "-f", str(REPO / "crds"))
    control_plane.kubectl("create", "namespace", "image-test")
    # A kubeconfig that carries its CA: the container sees only what is mounted.
    kubeconfig = json.loads(control_plane.kubeconfig.read_text())
    cluster = kubeconfig["clusters"][0]["cluster"]
    ca = Path(cluster.pop("certificate-authority")).read_bytes()
    cluster["certificate-authority-data"] = base64.b64encode(ca).decode()
    mounted = tmp_path / "kube"
    mounted.mkdir()
    (mounted / "config").write_text(json.dumps(kubeconfig))
    (mounted / "config").chmod(0o644)
    liveness, consent, metrics = free_port(), free_port(), free_port()
    as_the_deployment_runs_it(
        bundle,
        [
            "google-token-operator",
            "run",
            "--namespace=image-test",
            f"--liveness-port={liveness}",
            f"--consent-port={consent}",
            f"--metrics-port={metrics}",
        ],
        {"KUBECONFIG": "/kube/config", "OPERATOR_NAMESPACE": "image-test"},
    )
    config = json.loads((bundle / "config.json").read_text())
    config["mounts"].append(
        {"destination": "/kube", "type": "bind", "source": str(mounted), "options": ["rbind", "ro"]}
    )
    (bundle / "config.json").write_text(json.dumps(config))

    with container(bundle, "gto-image-run") as process:
        started = time.monotonic()
        for port, path in ((liveness, "/healthz"), (consent, "/healthz"), (metrics, "/metrics")):
            wait_until(
                lambda port=port, path=path: _answers(f"http://127.0.0.1:{port}{path}"),
                60,
                f"{path} on port {port} (operator output so far is in the failure)",
                process,
            )
        assert process.poll() is None
        # The operator itself runs as the image's user.
        state = json.loads(
            subprocess.run(
                ["runc", "state", "gto-image-run"], capture_output=True, text=True, check=True
            ).stdout
        )
        status = Path(f"/proc/{state['pid']}/status").read_text()
        assert f"Uid:\t{NON_ROOT}\t" in status
        print(f"run answered its probes {time.monotonic() - started:.1f} s after start")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except OSError:
        return False
