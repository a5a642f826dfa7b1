"""The namespaced install (manifests/components/namespaced): the operator serves the namespaces
it is given and may not touch a Secret anywhere else — proven with `kubectl auth can-i` and by
running it under that ServiceAccount's token through the whole flow.

It applies the install cluster-wide in part (its ClusterRole), so it puts the all-namespaces
install back when it is done, as the other manifests tests expect it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client import ApiException
from test_manifests import free_port, install, kubectl_apply

from devkit import ControlPlane
from devkit.servers import SandboxServer
from fixtures.installs import (
    OPERATOR,
    OPERATOR_NS,
    OPERATOR_USER,
    PRODUCTION,
    assert_no_rbac_denials,
    can_i,
    container,
    env_of,
    free_the_lease,
    pick,
    render,
)
from fixtures.operator import REPO, Cluster, OperatorProcess, authorized_client, wait_for

COMPONENT = REPO / "manifests" / "components" / "namespaced"
WATCHED = "google-token-operator-watched"  # the ClusterRole, and each RoleBinding to it


@pytest.fixture
def second_namespace(kube_api: client.ApiClient, namespace: str) -> Iterator[str]:
    core = client.CoreV1Api(kube_api)
    name = f"{namespace[:55]}-b"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core.delete_namespace(name)


def namespaced_overlay(folder: Path, watched: list[str]) -> Path:
    """An overlay as the component's comments tell a user to write one: production plus the
    component, WATCH_NAMESPACES and one RoleBinding per watched namespace."""
    folder.mkdir()
    binding = yaml.safe_load_all((COMPONENT / "watched-namespaces.yaml").read_text())
    example = next(doc for doc in binding if doc["kind"] == "RoleBinding")
    bindings = [{**example, "metadata": {**example["metadata"], "namespace": ns}} for ns in watched]
    (folder / "bindings.yaml").write_text(yaml.safe_dump_all(bindings))
    (folder / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [os.path.relpath(PRODUCTION, folder), "bindings.yaml"],
                "components": [os.path.relpath(COMPONENT, folder)],
                "patches": [
                    {
                        "target": {"kind": "RoleBinding", "name": WATCHED, "namespace": "reviews"},
                        "patch": "$patch: delete\napiVersion: rbac.authorization.k8s.io/v1\n"
                        f"kind: RoleBinding\nmetadata:\n  name: {WATCHED}\n"
                        "  namespace: reviews\n",
                    },
                    {
                        "patch": yaml.safe_dump(
                            {
                                "apiVersion": "apps/v1",
                                "kind": "Deployment",
                                "metadata": {"name": OPERATOR},
                                "spec": {
                                    "template": {
                                        "spec": {
                                            "containers": [
                                                {
                                                    "name": "operator",
                                                    "env": [
                                                        {
                                                            "name": "WATCH_NAMESPACES",
                                                            "value": ",".join(watched),
                                                        }
                                                    ],
                                                }
                                            ]
                                        }
                                    }
                                },
                            }
                        ),
                    },
                ],
            }
        )
    )
    return folder


def test_the_namespaced_mode_needs_no_secret_outside_its_namespaces(
    control_plane: ControlPlane,
    kube_api: client.ApiClient,
    cluster: Cluster,
    second_namespace: str,
    sandbox: SandboxServer,
    tmp_path: Path,
    test_output: Path,
) -> None:
    watched = [cluster.namespace, second_namespace]
    overlay = namespaced_overlay(tmp_path / "namespaced", watched)
    try:
        docs = render(control_plane, overlay)
        operator = container(pick(docs, "Deployment", OPERATOR)["spec"]["template"], "operator")
        assert operator["args"] == ["run", "--leader-election"]
        assert env_of(operator)["WATCH_NAMESPACES"] == ",".join(watched)
        cluster_rules = pick(docs, "ClusterRole", OPERATOR)["rules"]
        assert {r for rule in cluster_rules for r in rule["resources"]} == {
            "customresourcedefinitions",
            "namespaces",
        }
        install(control_plane)  # the namespace and CRDs first, as a user would have them
        kubectl_apply(control_plane, "-k", str(overlay))

        # What it may and may not do, asked of the API server.
        elsewhere = "default"
        allowed = [
            ("get", "secrets", "-n", cluster.namespace),
            ("create", "secrets", "-n", second_namespace),
            ("watch", "secrets", "-n", second_namespace),
            ("list", "googleclients.google-token-operator.dev", "-n", cluster.namespace),
            (
                "patch",
                "branches.google-token-operator.dev",
                "--subresource=status",
                "-n",
                second_namespace,
            ),
            ("get", "secrets", "-n", OPERATOR_NS),  # its own: consent state, the callback key
        ]
        refused = [
            ("list", "secrets", "--all-namespaces"),
            ("get", "secrets", "-n", elsewhere),
            ("watch", "secrets", "-n", "kube-system"),
            ("list", "googleclients.google-token-operator.dev", "--all-namespaces"),
            ("get", "secrets", "-n", "reviews"),  # the component's example, not bound here
        ]
        assert [a for a in allowed if not can_i(control_plane, OPERATOR_USER, *a)] == []
        assert [a for a in refused if can_i(control_plane, OPERATOR_USER, *a)] == []

        # The operator, as the Deployment runs it, under the ServiceAccount's token.
        free_the_lease(kube_api)
        token = control_plane.mint_service_account_token(OPERATOR_NS, OPERATOR)
        kubeconfig = control_plane.write_kubeconfig(
            tmp_path / "operator.kubeconfig", token, OPERATOR_USER
        )
        env = {
            **os.environ,
            **sandbox.env,
            "KUBECONFIG": str(kubeconfig),
            "OPERATOR_NAMESPACE": OPERATOR_NS,
            "WATCH_NAMESPACES": ",".join(watched),
            "PYTHONUNBUFFERED": "1",
        }
        ports = ["--metrics-port", "0", "--liveness-port", "0", "--consent-port", str(free_port())]
        process = OperatorProcess(
            [*operator["args"][1:], *ports, "--verbose"], env, test_output / "namespaced.log"
        ).start()
        try:
            other = Cluster(kube_api, second_namespace)
            authorized_client(cluster, sandbox)
            authorized_client(other, sandbox, name="other")
            cluster.wait_condition("googleclients", "acme", "Ready", "True", timeout=60)
            other.wait_condition("googleclients", "other", "Ready", "True", timeout=60)
            cluster.delete("googleclients", "acme")
            wait_for(lambda: cluster.get("googleclients", "acme") is None, 30, what="deleted")
            assert process.running
            assert_no_rbac_denials(process.log())
        finally:
            process.stop()
    finally:
        try:
            client.RbacAuthorizationV1Api(kube_api).delete_cluster_role(WATCHED)
        except ApiException as error:
            assert error.status == 404
        install(control_plane)  # the all-namespaces install, for the tests that follow
