"""Loading the cluster configuration: token files, exec plugins, client certificates,
in-cluster, and the refusal of basic auth."""

from __future__ import annotations

import base64
import datetime as dt
import ssl
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from stand_in import serving

from devkit.controlplane import write_pki
from devkit.node import _write_kubelet_client_pki as write_client_pki
from google_token_operator.kube import Kube, config
from google_token_operator.kube.config import ConfigError, load_config


def kubeconfig(folder: Path, user: dict[str, Any], **cluster: Any) -> dict[str, str]:
    """The environment of a process whose kubeconfig (in `folder`) logs in as `user`."""
    document = {
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1", **cluster}}],
        "users": [{"name": "me", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "me"}}],
        "current-context": "x",
    }
    path = folder / "kubeconfig"
    path.write_text(yaml.safe_dump(document))
    return {"KUBECONFIG": str(path)}


def serviceaccount(folder: Path) -> Path:
    """A pod's ServiceAccount folder, as the kubelet mounts it."""
    write_pki(folder / "pki")
    account = folder / "serviceaccount"
    account.mkdir()
    (account / "ca.crt").write_bytes((folder / "pki" / "ca.crt").read_bytes())
    (account / "namespace").write_text("operators\n")
    (account / "token").write_text("sa-token-1\n")
    return account


def test_in_cluster_config_is_the_service_host_and_the_serviceaccount(tmp_path: Path) -> None:
    account = serviceaccount(tmp_path)
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}
    loaded = load_config({**env, **kubeconfig(tmp_path, {"token": "other"})}, account)
    assert loaded.server == "https://[fd00::1]:6443"
    assert loaded.default_namespace == "operators"
    assert loaded.ca_path == str(account / "ca.crt") and loaded.ssl_context is not None
    assert loaded.auth_headers() == {"Authorization": "Bearer sa-token-1"}
    # Outside a pod (no service host) the same process takes its kubeconfig.
    assert load_config(kubeconfig(tmp_path, {"token": "other"}), account).token == "other"


@pytest.mark.parametrize("source", ["in-cluster", "kubeconfig tokenFile"])
def test_a_rotated_token_file_is_read_again_within_its_reread_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    account = serviceaccount(tmp_path)
    if source == "in-cluster":
        loaded = load_config({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, account)
    else:
        loaded = load_config(kubeconfig(tmp_path, {"tokenFile": str(account / "token")}))
    clock = [1000.0]
    monkeypatch.setattr(config.time, "monotonic", lambda: clock[0])
    assert loaded.auth_headers() == {"Authorization": "Bearer sa-token-1"}
    (account / "token").write_text("sa-token-2\n")  # the kubelet rotated the projected token
    clock[0] += config.TOKEN_FILE_REREAD - 1
    assert loaded.auth_headers() == {"Authorization": "Bearer sa-token-1"}
    clock[0] += 2
    assert loaded.auth_headers() == {"Authorization": "Bearer sa-token-2"}


PLUGIN = """
import datetime as dt, json, os, pathlib, sys
runs = pathlib.Path(sys.argv[1])
run = len(runs.read_text()) + 1 if runs.exists() else 1
runs.write_text("x" * run)
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
# The first token is about to expire (inside EXEC_EARLY), the next one lasts an hour.
expiry = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30 if run == 1 else 3600)
print(json.dumps({
    "apiVersion": info["apiVersion"],
    "kind": "ExecCredential",
    "status": {"token": os.environ["PREFIX"] + str(run), "expirationTimestamp":
               expiry.strftime("%Y-%m-%dT%H:%M:%SZ")},
}))
"""


def test_an_exec_plugin_is_run_again_only_when_its_token_is_about_to_expire(
    tmp_path: Path,
) -> None:
    plugin, runs = tmp_path / "plugin.py", tmp_path / "runs"
    plugin.write_text(PLUGIN)
    exec_user = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": sys.executable,
        "args": [str(plugin), str(runs)],
        "env": [{"name": "PREFIX", "value": "exec-"}],
    }
    loaded = load_config(kubeconfig(tmp_path, {"exec": exec_user}))
    assert loaded.auth_headers() == {"Authorization": "Bearer exec-1"}
    assert loaded.auth_headers() == {"Authorization": "Bearer exec-2"}
    assert loaded.auth_headers() == {"Authorization": "Bearer exec-2"}
    token, expires = loaded.current_token()
    assert token == "exec-2" and runs.read_text() == "xx"
    assert expires is not None and expires > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=59)


async def client_name(request: web.Request) -> web.Response:
    """The common name of the certificate the client presented."""
    assert request.transport is not None
    subject = dict(pair[0] for pair in request.transport.get_extra_info("peercert")["subject"])
    return web.json_response({"client": subject["commonName"]})


@pytest.mark.parametrize("given_as", ["files", "data"])
async def test_the_client_certificate_is_presented_to_the_api_server(
    tmp_path: Path, given_as: str
) -> None:
    pki, client = tmp_path / "pki", tmp_path / "client"
    write_pki(pki)
    write_client_pki(client)  # the node's client certificate, from a client CA of its own
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(pki / "apiserver.crt", pki / "apiserver.key")
    server_side.load_verify_locations(client / "kubelet-ca.crt")
    server_side.verify_mode = ssl.CERT_REQUIRED
    certificate, key = client / "kubelet-client.crt", client / "kubelet-client.key"
    if given_as == "files":  # relative to the kubeconfig
        user = {
            "client-certificate": "client/kubelet-client.crt",
            "client-key": "client/kubelet-client.key",
        }
    else:
        user = {
            "client-certificate-data": base64.b64encode(certificate.read_bytes()).decode(),
            "client-key-data": base64.b64encode(key.read_bytes()).decode(),
        }
    app = web.Application()
    app.router.add_get("/version", client_name)
    async with serving(app, server_side) as url:
        env = kubeconfig(tmp_path, user, server=url, **{"certificate-authority": "pki/ca.crt"})
        kube = Kube(load_config(env))
        try:
            assert await kube.request("GET", "/version") == {
                "client": "kube-apiserver-kubelet-client"
            }
        finally:
            await kube.close()


def test_a_user_with_only_a_username_and_password_is_refused_by_name(tmp_path: Path) -> None:
    env = kubeconfig(tmp_path, {"username": "admin", "password": "hunter2-secret"})
    with pytest.raises(ConfigError, match=r"user 'me' .*basic auth is not supported") as refused:
        load_config(env)
    assert "hunter2-secret" not in str(refused.value)


def test_a_named_kubeconfig_and_context_win_over_the_environment_and_the_pod(
    tmp_path: Path,
) -> None:
    account = serviceaccount(tmp_path)
    document = {
        "clusters": [
            {"name": "a", "cluster": {"server": "http://127.0.0.1:1"}},
            {"name": "b", "cluster": {"server": "http://127.0.0.1:2"}},
        ],
        "users": [{"name": "me", "user": {"token": "t"}}],
        "contexts": [
            {"name": "one", "context": {"cluster": "a", "user": "me"}},
            {"name": "two", "context": {"cluster": "b", "user": "me", "namespace": "reviews"}},
        ],
        "current-context": "one",
    }
    named = tmp_path / "named.yaml"
    named.write_text(yaml.safe_dump(document))
    pod = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", **kubeconfig(tmp_path, {"token": "env"})}
    chosen = load_config(pod, account, kubeconfig=str(named))
    assert (chosen.server, chosen.token) == ("http://127.0.0.1:1", "t")
    other = load_config(pod, account, kubeconfig=str(named), context="two")
    assert (other.server, other.default_namespace) == ("http://127.0.0.1:2", "reviews")
    # --context alone picks from $KUBECONFIG, even in a pod; an unknown one is named.
    with pytest.raises(ConfigError, match="has no context 'three'"):
        load_config(pod, account, context="three")
    assert load_config(pod, account, context="x").token == "env"
