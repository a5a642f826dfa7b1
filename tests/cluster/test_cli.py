"""The kubectl-like command line on the real API server, with one operator: the plugin with
-n before the command, `status NAME`, -o wide|yaml, --watch, --kubeconfig/--context,
refresh -l/--all, a namespace that does not exist, and `kubectl get -o wide`'s columns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from devkit import ControlPlane
from devkit.servers import SandboxServer
from fixtures.installs import kubectl_binary
from fixtures.operator import Cluster, OperatorFactory, authorized_client, wait_for

REFRESH = "google-token-operator.dev/refresh-requested-at"


def cli(
    *args: str, kubeconfig: Path, via: tuple[str, ...] = (), timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The command (or `via` it, e.g. kubectl's plugin), with KUBECONFIG set."""
    bin_dir = str(Path(sys.executable).parent)
    return subprocess.run(
        [*(via or (sys.executable, "-m", "google_token_operator")), *args],
        env={
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
            "KUBECONFIG": str(kubeconfig),
        },
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_command_line_reads_like_kubectl(
    control_plane: ControlPlane,
    cluster: Cluster,
    sandbox: SandboxServer,
    start_operator: OperatorFactory,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    namespace, kubeconfig = cluster.namespace, control_plane.kubeconfig
    start_operator()
    refresh_token = authorized_client(cluster, sandbox)
    cluster.wait_condition("googleclients", "acme", "Ready", "True", timeout=20)
    cluster.wait_events("acme", "TokenValid")

    # The plugin, with -n before the command as kubectl users write it.
    plugin = cli(
        "-n",
        namespace,
        "status",
        kubeconfig=kubeconfig,
        via=(kubectl_binary(control_plane), "google-token"),
    )
    assert plugin.returncode == 0, plugin.stdout + plugin.stderr
    assert plugin.stdout.splitlines()[2].split()[:3] == ["acme", "owner@example.com", "True"]

    # One client in detail: conditions, token times, its Secrets (no value), Events.
    status = cluster.get("googleclients", "acme")["status"]  # type: ignore[index]
    detail = cli("status", "acme", "-n", namespace, kubeconfig=kubeconfig)
    assert detail.returncode == 0, detail.stderr
    text = detail.stdout
    assert text.startswith(f"GoogleClient {namespace}/acme\n")
    assert "  Ready       True" in text
    assert f"next refresh:   {status['nextRefreshTime']} (in " in text
    secrets = text.split("Secrets:")[1].split("Branches:")[0]
    assert "credentials  acme-oauth         present  client_id, client_secret" in secrets, text
    assert "private      acme-google-oauth  managed  access_token" in secrets, text
    assert "token        acme-google-token  managed  access_token" in secrets, text
    assert "TokenValid" in text.split("Events:")[1]
    view = yaml.safe_load(
        cli("status", "acme", "-n", namespace, "-o", "yaml", kubeconfig=kubeconfig).stdout
    )
    assert view["token"]["nextRefreshTime"] == status["nextRefreshTime"]
    assert {event["reason"] for event in view["events"]} >= {"TokenValid"}

    # A kubeconfig whose current context is dead: --context picks the live one.
    document = yaml.safe_load(kubeconfig.read_text())
    live = document["current-context"]
    [user] = [c["context"]["user"] for c in document["contexts"] if c["name"] == live]
    document["clusters"].append({"name": "dead", "cluster": {"server": "http://127.0.0.1:9"}})
    document["contexts"].append({"name": "dead", "context": {"cluster": "dead", "user": user}})
    document["current-context"] = "dead"
    other = tmp_path / "other-kubeconfig"
    other.write_text(yaml.safe_dump(document))
    dead = cli("status", "-n", namespace, "--kubeconfig", str(other), kubeconfig=kubeconfig)
    chosen = cli(
        "--context",
        live,
        "status",
        "-n",
        namespace,
        "-o",
        "json",
        "--kubeconfig",
        str(other),
        kubeconfig=kubeconfig,
    )
    assert dead.returncode == 1 and "cannot list GoogleClients" in dead.stderr
    assert chosen.returncode == 0, chosen.stderr
    assert [c["name"] for c in json.loads(chosen.stdout)["clients"]] == ["acme"]

    # --watch prints again when something changes (bounded here: stopped once it did).
    watch = subprocess.Popen(
        [sys.executable, "-m", "google_token_operator", "status", "-n", namespace, "--watch"],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        stdout=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(watch.stdout or []), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any(line.startswith("acme ") for line in seen), 20, what="a frame")
        cluster.create("googleclients", "pending", {"credentialsSecretRef": {"name": "acme-oauth"}})
        wait_for(lambda: any(line.startswith("pending ") for line in seen), 20, what="a frame")
    finally:
        watch.terminate()
        watch.wait(10)
    frames = "".join(seen).split("\n\n")
    assert "pending" not in frames[0] and "pending" in frames[-2]

    # -l: only the clients it selects are asked (pending has no grant: answered at once).
    control_plane.kubectl("label", "googleclient", "pending", "team=b", "-n", namespace)
    selected = cli(
        "refresh", "-n", namespace, "-l", "team=b", "--timeout", "30", kubeconfig=kubeconfig
    )
    assert selected.returncode == 3, selected.stdout + selected.stderr
    assert ": pending." in selected.stdout.splitlines()[0]
    assert "GoogleClient " + namespace + "/pending was not refreshed" in selected.stdout
    acme_annotations = cluster.get("googleclients", "acme")["metadata"].get("annotations") or {}  # type: ignore[index]
    assert REFRESH not in acme_annotations
    # --all asks every client; acme's token is under a minute old, so its refresh waits
    # behind the rate limit past this short timeout (4), or is done (0) on a slow machine.
    everyone = cli("refresh", "--all", "-n", namespace, "--timeout", "5", kubeconfig=kubeconfig)
    assert ": acme, pending." in everyone.stdout.splitlines()[0], everyone.stdout
    assert everyone.returncode in (0, 4), everyone.stdout + everyone.stderr
    for name in ("acme", "pending"):
        assert REFRESH in (cluster.get("googleclients", name) or {})["metadata"]["annotations"]

    # A namespace that does not exist is named as such.
    nowhere = cli("status", "-n", "no-such-namespace-x1", kubeconfig=kubeconfig)
    assert nowhere.returncode == 1
    assert "Namespace no-such-namespace-x1 does not exist" in nowhere.stdout

    # kubectl get -o wide: the next refresh and Ready's message, only when wide.
    def next_refresh() -> str:
        return str((cluster.get("googleclients", "acme") or {})["status"]["nextRefreshTime"])

    before = next_refresh()
    plain = control_plane.kubectl("get", "googleclients", "-n", namespace).stdout
    wide = control_plane.kubectl("get", "googleclients", "-n", namespace, "-o", "wide").stdout
    assert "NEXT REFRESH" not in plain and "MESSAGE" not in plain
    header, *rows = wide.splitlines()
    assert "NEXT REFRESH" in header and "MESSAGE" in header
    [row] = [row for row in rows if row.startswith("acme ")]
    assert before in row or next_refresh() in row, row  # the operator may move it meanwhile
    assert "access token valid until" in row

    everything = plugin.stdout + detail.stdout + chosen.stdout + "".join(seen) + everyone.stdout
    assert refresh_token not in everything
    print(f"\n[cli] the kubectl-like command line in {time.monotonic() - started:.1f} s")
