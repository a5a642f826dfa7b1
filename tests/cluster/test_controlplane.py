"""The local control plane is a real Kubernetes API: storage, TLS, token auth, RBAC, tokens."""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client import ApiException

from devkit import BinariesMissingError, ControlPlane, binaries


def test_secret_round_trips_through_the_api_server(
    kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="greeting"),
            string_data={"message": "hello"},
        ),
    )

    secret = core.read_namespaced_secret("greeting", namespace)

    assert secret.data is not None
    assert base64.b64decode(secret.data["message"]) == b"hello"


def test_service_account_token_is_held_to_its_rbac(
    control_plane: ControlPlane, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core = client.CoreV1Api(kube_api)
    rbac = client.RbacAuthorizationV1Api(kube_api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
    )
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="read-configmaps"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["get"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="reader-reads-configmaps"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="read-configmaps"
            ),
            subjects=[
                client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=namespace)
            ],
        ),
    )
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="settings"))
    )

    token = control_plane.mint_service_account_token(namespace, "reader")
    kubeconfig = control_plane.write_kubeconfig(tmp_path / "reader.kubeconfig", token, "reader")
    with config.new_client_from_config(config_file=str(kubeconfig)) as reader_api:
        as_reader = client.CoreV1Api(reader_api)

        allowed = as_reader.read_namespaced_config_map("settings", namespace)
        assert allowed.metadata is not None
        assert allowed.metadata.name == "settings"
        with pytest.raises(ApiException) as refused:
            as_reader.create_namespaced_secret(
                namespace, client.V1Secret(metadata=client.V1ObjectMeta(name="not-allowed"))
            )
        assert refused.value.status == 403
        with pytest.raises(ApiException) as refused_elsewhere:
            as_reader.read_namespaced_config_map("settings", "default")
        assert refused_elsewhere.value.status == 403


def test_kubectl_talks_to_the_control_plane_as_admin(control_plane: ControlPlane) -> None:
    result = control_plane.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")

    assert result.stdout == "admin"


def test_stop_leaves_no_process_and_no_temp_dir(control_plane: ControlPlane) -> None:
    # A second control plane beside the session's: stopping it must not touch the other one.
    plane = ControlPlane(control_plane.bin_dir).start()
    workdir, pids = plane.workdir, plane.pids
    assert len(pids) == 2

    plane.stop()

    assert not workdir.exists()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert control_plane.kubectl("get", "--raw", "/readyz").stdout == "ok"


def test_missing_binaries_in_kubebuilder_assets_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))

    with pytest.raises(BinariesMissingError, match="no executable etcd or kube-apiserver"):
        binaries.ensure_binaries()


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No KUBEBUILDER_ASSETS, an empty binary cache, and PATH = tmp_path/bin (no `go` yet)."""
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.setenv("GTO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    return tmp_path / "cache" / "kube-binaries"


def test_missing_go_is_named_when_nothing_is_cached(empty_cache: Path) -> None:
    with pytest.raises(BinariesMissingError, match=r"`go` is not on PATH.*Install Go 1\.\d+"):
        binaries.ensure_binaries()


def test_kubebuilder_assets_are_used_when_set(
    control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(control_plane.bin_dir))

    assert binaries.ensure_binaries() == control_plane.bin_dir


def test_pins_come_from_the_wrapper_go_mod() -> None:
    pins = binaries.read_pins(binaries.repo_root() / binaries.MODULE_SUBDIR)

    assert pins.kubernetes.startswith("v1.")
    assert pins.etcd.startswith("v3.")
    assert pins.cache_key == f"{pins.kubernetes}-{pins.etcd}-{pins.digest}"


def install_fake_go(folder: Path, script: str) -> None:
    """A `go` on PATH that runs ``script`` with ``args`` = its arguments; no toolchain needed."""
    folder.mkdir()
    go = folder / "go"
    go.write_text(f"#!{sys.executable}\nimport os, sys\nargs = sys.argv[1:]\n{script}\n")
    go.chmod(0o755)


def test_build_stamps_the_version_and_lands_complete(empty_cache: Path, tmp_path: Path) -> None:
    # The fake writes its arguments where the binary should go.
    install_fake_go(
        tmp_path / "bin",
        'out = args[args.index("-o") + 1]\n'
        'open(out, "w").write("\\n".join(args))\n'
        "os.chmod(out, 0o755)",
    )
    pins = binaries.read_pins(binaries.repo_root() / binaries.MODULE_SUBDIR)

    bin_dir = binaries.ensure_binaries()

    assert bin_dir == binaries.cache_dir(pins)
    assert sorted(path.name for path in empty_cache.iterdir()) == [".lock", bin_dir.name]
    apiserver_args = (bin_dir / "kube-apiserver").read_text().splitlines()
    ldflags = apiserver_args[apiserver_args.index("-ldflags") + 1]
    assert f"-X k8s.io/component-base/version.gitVersion={pins.kubernetes}" in ldflags
    assert apiserver_args[-1] == "k8s.io/kubernetes/cmd/kube-apiserver"


def test_failed_build_says_why_and_leaves_nothing(empty_cache: Path, tmp_path: Path) -> None:
    install_fake_go(
        tmp_path / "bin", 'sys.stderr.write("proxy.golang.org: connection refused\\n")\nsys.exit(1)'
    )

    with pytest.raises(BinariesMissingError, match=r"(?s)building etcd failed.*connection refused"):
        binaries.ensure_binaries()

    assert [path.name for path in empty_cache.iterdir()] == [".lock"]
