"""manifests/ on the real API server: they render, apply, pass Pod Security "restricted", and
their RBAC is exactly enough: the operator runs the whole flow under its own ServiceAccount's
token (TokenRequest), and `kubectl auth can-i` shows it cannot do more than the design needs.

The install is cluster-scoped in part (Namespace, CRDs, ClusterRole), so it lands in the
session's control plane once and every test re-applies it; applying is idempotent.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from kubernetes import client
from kubernetes.client import ApiException

from devkit import ControlPlane, release
from devkit.servers import SandboxServer
from fixtures.installs import (
    CALLBACK,
    LEASE,
    MANIFESTS,
    OPERATOR,
    OPERATOR_ARGS,
    OPERATOR_NS,
    OPERATOR_USER,
    PRODUCTION,
    Doc,
    can_i,
    check_cluster_wide,
    clusterwide_operator_process,
    container,
    env_of,
    pick,
    render,
    run_whole_flow,
    service_account_kubeconfig,
)
from fixtures.operator import (
    REPO,
    Cluster,
    OperatorFactory,
    OperatorProcess,
)
from google_token_operator import GROUP
from google_token_operator.settings import ENDPOINT_VARIABLES, Settings

KIND = MANIFESTS / "overlays" / "kind"
EXAMPLES = MANIFESTS / "examples"

CALLBACK_USER = f"system:serviceaccount:{OPERATOR_NS}:{CALLBACK}"
GOOGLE_VARIABLES = tuple(ENDPOINT_VARIABLES)


# --- helpers -------------------------------------------------------------------------------


def kubectl_apply(control_plane: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    result = control_plane.kubectl("apply", *args, check=False)
    assert result.returncode == 0, f"kubectl apply {' '.join(args)} failed:\n{result.stderr}"
    return result


def install(control_plane: ControlPlane) -> list[Doc]:
    """The documented install: `kubectl apply -k manifests/overlays/production`."""
    docs = render(control_plane, PRODUCTION)
    kubectl_apply(control_plane, "-k", str(PRODUCTION))
    control_plane.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        *(f"crd/{d['metadata']['name']}" for d in docs if d["kind"] == "CustomResourceDefinition"),
    )
    return docs


def resource_versions(control_plane: ControlPlane, path: Path) -> dict[str, str]:
    """kind/name -> resourceVersion of every object of a kustomization, as stored."""
    listing = json.loads(control_plane.kubectl("get", "-k", str(path), "-o", "json").stdout)
    return {
        f"{item['kind']}/{item['metadata']['name']}": item["metadata"]["resourceVersion"]
        for item in listing["items"]
    }


def api_get(control_plane: ControlPlane, token: str, path: str) -> requests.Response:
    return requests.get(
        control_plane.server + path,
        headers={"Authorization": f"Bearer {token}"},
        verify=str(control_plane.ca_file),
        timeout=10,
    )


def rules_review(control_plane: ControlPlane, token: str, namespace: str) -> list[Doc]:
    """What the token's own identity may do in `namespace` (kubectl auth can-i --list)."""
    response = requests.post(
        control_plane.server + "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectRulesReview",
            "spec": {"namespace": namespace},
        },
        verify=str(control_plane.ca_file),
        timeout=10,
    )
    assert response.status_code == 201, response.text
    rules: list[Doc] = response.json()["status"]["resourceRules"]
    return sorted(rules, key=lambda rule: json.dumps(rule, sort_keys=True))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def as_pod(template: Doc, name: str, namespace: str) -> Doc:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(template["metadata"].get("labels") or {}),
        },
        "spec": template["spec"],
    }


def without_security_context(template: Doc) -> Doc:
    spec = {k: v for k, v in template["spec"].items() if k != "securityContext"}
    spec["containers"] = [
        {k: v for k, v in c.items() if k != "securityContext"} for c in spec["containers"]
    ]
    return {**template, "spec": spec}


def refusal(error: ApiException) -> str:
    message: str = json.loads(error.body)["message"]
    return message


def create_service_accounts(core: client.CoreV1Api, namespace: str, *names: str) -> None:
    # No controller-manager here, so not even "default" exists until created.
    for name in names:
        core.create_namespaced_service_account(
            namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
        )


# --- rendering -----------------------------------------------------------------------------


def test_production_overlay_renders_the_real_google_install(control_plane: ControlPlane) -> None:
    docs = render(control_plane, PRODUCTION)
    # The CRDs come from crds/ itself (one source).
    for path in sorted((REPO / "crds").glob("*.yaml")):
        source = yaml.safe_load(path.read_text())
        rendered = pick(docs, "CustomResourceDefinition", source["metadata"]["name"])
        assert rendered["spec"] == source["spec"], f"{path.name} differs from its rendering"

    deployment = pick(docs, "Deployment", OPERATOR)
    template = deployment["spec"]["template"]
    operator = container(template, "operator")
    assert operator["args"] == OPERATOR_ARGS
    assert operator["image"] == f"google-token-operator:{release.project_version(REPO)}"
    env = env_of(operator)
    # The callback pods run exactly the operator's image (kustomize replacement after images:).
    assert env["CALLBACK_IMAGE"] == operator["image"]
    assert env["OPERATOR_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["CALLBACK_URL"].startswith("https://")
    # Google's real endpoints are the operator's defaults: production sets none of them, and
    # nothing in the install runs the sandbox.
    assert not set(GOOGLE_VARIABLES) & env.keys()
    text = yaml.safe_dump_all(docs)
    assert "sandbox" not in text.lower()
    assert all(d["metadata"]["name"] != "google-sandbox" for d in docs)

    # Two replicas only because a Lease lets one act (see deployment.yaml).
    assert deployment["spec"]["replicas"] == 2 and "--leader-election" in operator["args"]
    assert operator["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    ports = {p["name"]: p["containerPort"] for p in operator["ports"]}
    assert ports == {"consent": 8082, "metrics": 9090, "healthz": 8081}
    assert operator["resources"]["requests"] and operator["resources"]["limits"]["memory"]
    security = operator["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert (security["runAsUser"], security["runAsGroup"]) == (10001, 10001)
    assert template["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {m["mountPath"]: m["name"] for m in operator["volumeMounts"]}
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]

    namespace = pick(docs, "Namespace", OPERATOR_NS)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    service = pick(docs, "Service", OPERATOR)
    assert {p["port"] for p in service["spec"]["ports"]} == {8082, 9090}


def test_rbac_is_sectioned_narrow_and_leaves_the_callback_without_rights(
    control_plane: ControlPlane,
) -> None:
    rbac_text = (MANIFESTS / "base" / "rbac.yaml").read_text()
    assert "# --- framework" in rbac_text and "# --- application" in rbac_text
    docs = render(control_plane, PRODUCTION)
    roles = [d for d in docs if d["kind"] in ("ClusterRole", "Role")]
    assert {(d["kind"], d["metadata"]["name"]) for d in roles} == {
        ("ClusterRole", OPERATOR),
        ("Role", OPERATOR),
    }
    for role in roles:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"{role['kind']} {rule} uses '*'"
    cluster_resources = {
        r for rule in pick(docs, "ClusterRole", OPERATOR)["rules"] for r in rule["resources"]
    }
    assert not {"pods", "deployments", "services", "serviceaccounts"} & cluster_resources
    role = pick(docs, "Role", OPERATOR)
    assert role["metadata"]["namespace"] == OPERATOR_NS
    for rule in role["rules"]:
        if set(rule["resources"]) & {"deployments", "services", "serviceaccounts"}:
            assert rule["resourceNames"] == [CALLBACK], rule
        elif rule["resources"] == ["secrets"]:  # its own namespace: consent state, callback key
            assert "update" not in rule["verbs"] and "deletecollection" not in rule["verbs"]
        elif rule["verbs"] != ["create"]:  # a POST create carries no name to restrict
            assert rule["resourceNames"] == [LEASE], rule

    bindings = [d for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    subjects = [s for b in bindings for s in b["subjects"]]
    assert subjects and all(s["name"] == OPERATOR for s in subjects)
    assert pick(docs, "ServiceAccount", CALLBACK)["automountServiceAccountToken"] is False


def test_kind_overlay_renders_with_the_sandbox(control_plane: ControlPlane) -> None:
    docs = render(control_plane, KIND)
    operator = container(pick(docs, "Deployment", OPERATOR)["spec"]["template"], "operator")
    assert operator["image"] == "google-token-operator:dev"
    assert operator["imagePullPolicy"] == "Never"
    assert operator["args"] == OPERATOR_ARGS
    env = env_of(operator)
    assert env["CALLBACK_IMAGE"] == operator["image"]
    # Every Google endpoint points at the sandbox: in-cluster, or (the consent page, opened
    # by a browser) through `kubectl port-forward svc/google-sandbox 8099`.
    for variable in GOOGLE_VARIABLES:
        assert re.match(
            r"http://(google-sandbox\.google-token-operator\.svc|localhost):8099", env[variable]
        ), variable
    sandbox = container(pick(docs, "Deployment", "google-sandbox")["spec"]["template"], "sandbox")
    # Its own image (the Dockerfile's `sandbox` target): the operator's image has no sandbox.
    assert sandbox["image"] == "google-token-sandbox:dev" and sandbox["imagePullPolicy"] == "Never"
    assert "--auto-approve" in sandbox["args"]
    assert pick(docs, "Service", "google-sandbox")["spec"]["ports"][0]["port"] == 8099
    # The sandbox accepts the examples' placeholder OAuth client as it is.
    credentials = pick(render(control_plane, EXAMPLES), "Secret", "acme-oauth")["stringData"]
    assert sandbox["args"][sandbox["args"].index("--client-id") + 1] == credentials["client_id"]
    secret_arg = sandbox["args"][sandbox["args"].index("--client-secret") + 1]
    assert secret_arg == credentials["client_secret"]


def test_consumer_example_mounts_the_branch_secret_as_a_directory(
    control_plane: ControlPlane, namespace: str, crds: None
) -> None:
    docs = render(control_plane, EXAMPLES)
    assert [d["kind"] for d in docs].count("Branch") == 2
    pick(docs, "GoogleClient", "acme")
    branches = {d["metadata"]["name"] for d in docs if d["kind"] == "Branch"}
    template = pick(docs, "Deployment", "review-fetcher")["spec"]["template"]
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    fetcher = container(template, "fetcher")
    secret_mounts = [m for m in fetcher["volumeMounts"] if "secret" in volumes[m["name"]]]
    assert len(secret_mounts) == 1
    mount = secret_mounts[0]
    # The whole Secret as a directory: the kubelet updates it in place after a refresh.
    assert "subPath" not in mount and "subPathExpr" not in mount
    secret_name = volumes[mount["name"]]["secret"]["secretName"]
    assert secret_name in {f"{b}-google-token" for b in branches}
    # Never from env: an env variable keeps the first token forever.
    assert "envFrom" not in fetcher
    assert all("secretKeyRef" not in (e.get("valueFrom") or {}) for e in fetcher.get("env", []))
    assert "subPath" not in yaml.safe_dump(docs)

    # The API server (CRD schemas and CEL rules included) accepts every example object.
    objects = [
        {**d, "metadata": {**d["metadata"], "namespace": namespace}}
        for d in docs
        if d["kind"] != "Namespace"
    ]
    listing = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    result = control_plane.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=listing, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(server dry run)") == len(objects)


def test_network_policies_service_and_ingress_fit_the_callback_workload(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    from google_token_operator.consent.workload import callback_deployment, callback_service

    docs = render(control_plane, PRODUCTION)
    callback = callback_deployment(Settings(), OPERATOR_NS)
    callback_labels = callback["spec"]["template"]["metadata"]["labels"]
    callback_container = callback["spec"]["template"]["spec"]["containers"][0]

    def selects(selector: Doc, labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in selector["matchLabels"].items())

    # The callback reaches the consent API through the operator's Service, at the URL the
    # builder gives it.
    service = pick(docs, "Service", OPERATOR)
    assert f"http://{OPERATOR}.{OPERATOR_NS}.svc:8082" in callback_container["args"]
    operator_labels = pick(docs, "Deployment", OPERATOR)["spec"]["template"]["metadata"]["labels"]
    assert selects({"matchLabels": service["spec"]["selector"]}, operator_labels)

    # Operator: 8082 only from callback pods, 9090 from any namespace, nothing else.
    policy = pick(docs, "NetworkPolicy", OPERATOR)["spec"]
    assert selects(policy["podSelector"], operator_labels)
    assert policy["policyTypes"] == ["Ingress"]
    by_port = {rule["ports"][0]["port"]: rule["from"] for rule in policy["ingress"]}
    assert set(by_port) == {8082, 9090}
    (consent_peer,) = by_port[8082]
    assert set(consent_peer) == {"podSelector"}
    assert selects(consent_peer["podSelector"], callback_labels)
    assert not selects(consent_peer["podSelector"], operator_labels)
    assert by_port[9090] == [{"namespaceSelector": {}}]
    # Callback: 8080 from anywhere; out only to the operator's consent API and to DNS.
    open_policy = pick(docs, "NetworkPolicy", CALLBACK)["spec"]
    assert selects(open_policy["podSelector"], callback_labels)
    assert open_policy["policyTypes"] == ["Ingress", "Egress"]
    assert open_policy["ingress"] == [{"ports": [{"port": 8080, "protocol": "TCP"}]}]
    to_operator, to_dns = open_policy["egress"]
    assert to_operator["ports"] == [{"port": 8082, "protocol": "TCP"}]
    assert selects(to_operator["to"][0]["podSelector"], operator_labels)
    assert {port["port"] for port in to_dns["ports"]} == {53}
    assert to_dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert {"containerPort": 8080, "name": "http"} in callback_container["ports"]

    # The optional Ingress component routes the callback path to the builder's Service.
    overlay = tmp_path / "with-ingress"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                # kustomize takes relative paths only
                "resources": [os.path.relpath(PRODUCTION, overlay)],
                "components": [
                    os.path.relpath(MANIFESTS / "components" / "callback-ingress", overlay)
                ],
            }
        )
    )
    ingress = pick(render(control_plane, overlay), "Ingress", CALLBACK)
    assert ingress["metadata"]["namespace"] == OPERATOR_NS
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    assert path["path"] == "/oauth2/callback"
    backend = path["backend"]["service"]
    port_names = {p["name"] for p in callback_service(OPERATOR_NS)["spec"]["ports"]}
    assert backend["name"] == CALLBACK and backend["port"]["name"] in port_names
    # ...and it is not part of the default install.
    assert all(d["kind"] != "Ingress" for d in docs)
    install(control_plane)
    dry = control_plane.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=json.dumps(ingress), check=False
    )
    assert dry.returncode == 0, dry.stderr


# --- applying ------------------------------------------------------------------------------


def test_production_overlay_dry_run_then_apply_on_the_real_api_server(
    control_plane: ControlPlane,
) -> None:
    docs = render(control_plane, PRODUCTION)
    # A server-side dry run cannot create the Namespace its namespaced objects need (they are
    # refused with "namespaces ... not found"), so the Namespace exists first, as it would
    # after `kubectl create namespace google-token-operator`.
    namespace = json.dumps(pick(docs, "Namespace", OPERATOR_NS))
    control_plane.kubectl("apply", "-f", "-", input=namespace)

    dry = kubectl_apply(control_plane, "--dry-run=server", "-k", str(PRODUCTION))
    assert dry.stdout.count("(server dry run)") == len(docs), dry.stdout
    # The namespace warns on "restricted": no pod template of the install may violate it.
    assert "PodSecurity" not in dry.stderr, dry.stderr

    install(control_plane)
    before = resource_versions(control_plane, PRODUCTION)
    assert len(before) == len(docs)
    # Idempotent: a second apply creates nothing and changes no stored object. (kubectl may
    # still print "configured" for a no-op patch, e.g. of the PodDisruptionBudget.)
    again = kubectl_apply(control_plane, "-k", str(PRODUCTION))
    assert " created" not in again.stdout, again.stdout
    assert resource_versions(control_plane, PRODUCTION) == before

    # The kind overlay applies over it too (server dry run; the sandbox is never installed
    # here), its sandbox pod template restricted as well.
    kind = kubectl_apply(control_plane, "--dry-run=server", "-k", str(KIND))
    assert "deployment.apps/google-sandbox created (server dry run)" in kind.stdout
    assert "PodSecurity" not in kind.stderr, kind.stderr


# --- Pod Security Admission -----------------------------------------------------------------


def test_restricted_pod_security_accepts_the_operator_and_callback_pods(
    control_plane: ControlPlane, kube_api: client.ApiClient, namespace: str
) -> None:
    from google_token_operator.consent.workload import callback_deployment

    core = client.CoreV1Api(kube_api)
    core.patch_namespace(
        namespace,
        {
            "metadata": {
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                }
            }
        },
    )
    create_service_accounts(core, namespace, "default", OPERATOR, CALLBACK)
    operator = pick(render(control_plane, PRODUCTION), "Deployment", OPERATOR)
    sandbox = pick(render(control_plane, KIND), "Deployment", "google-sandbox")
    callback = callback_deployment(Settings(), namespace)
    templates = {
        "operator": operator["spec"]["template"],
        "callback": callback["spec"]["template"],
        "sandbox": sandbox["spec"]["template"],
    }
    for name, template in templates.items():
        core.create_namespaced_pod(namespace, as_pod(template, name, namespace))
    created = {pod.metadata.name for pod in core.list_namespaced_pod(namespace).items}
    assert created == set(templates)

    # Negative control: the same pod without its securityContext is refused, so the
    # acceptance above is PSA saying yes, not PSA being off.
    for name, template in templates.items():
        bare = as_pod(without_security_context(template), f"{name}-bare", namespace)
        with pytest.raises(ApiException) as refused:
            core.create_namespaced_pod(namespace, bare)
        assert refused.value.status == 403
        assert 'violates PodSecurity "restricted:latest"' in refusal(refused.value)


def test_the_install_namespace_enforces_restricted(
    control_plane: ControlPlane, kube_api: client.ApiClient
) -> None:
    install(control_plane)
    core = client.CoreV1Api(kube_api)
    operator = pick(render(control_plane, PRODUCTION), "Deployment", OPERATOR)
    template = operator["spec"]["template"]
    # Dry runs: admission (PodSecurity included) runs, nothing is stored.
    core.create_namespaced_pod(
        OPERATOR_NS, as_pod(template, "psa-probe", OPERATOR_NS), dry_run="All"
    )
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(
            OPERATOR_NS,
            as_pod(without_security_context(template), "psa-probe", OPERATOR_NS),
            dry_run="All",
        )
    assert refused.value.status == 403
    assert 'violates PodSecurity "restricted:latest"' in refusal(refused.value)


# --- RBAC: enough ----------------------------------------------------------------------------


@pytest.fixture
def operator_kubeconfig(control_plane: ControlPlane, tmp_path: Path) -> Path:
    """A kubeconfig holding a TokenRequest token of the manifests' operator ServiceAccount."""
    install(control_plane)
    return service_account_kubeconfig(control_plane, tmp_path / "operator.kubeconfig")


def test_operator_runs_the_whole_flow_under_its_own_service_account(
    control_plane: ControlPlane,
    kube_api: client.ApiClient,
    cluster: Cluster,
    sandbox: SandboxServer,
    start_operator: OperatorFactory,
    operator_kubeconfig: Path,
) -> None:
    run_whole_flow(kube_api, cluster, sandbox, start_operator, operator_kubeconfig)


@pytest.fixture
def clusterwide_operator(
    kube_api: client.ApiClient,
    sandbox: SandboxServer,
    operator_kubeconfig: Path,
    test_output: Path,
) -> Iterator[OperatorProcess]:
    """The operator with the Deployment's own arguments, under the ServiceAccount's token."""
    with clusterwide_operator_process(
        kube_api, sandbox, operator_kubeconfig, test_output / "clusterwide.log"
    ) as process:
        yield process


def test_operator_runs_cluster_wide_under_its_service_account(
    cluster: Cluster,
    sandbox: SandboxServer,
    clusterwide_operator: OperatorProcess,
) -> None:
    check_cluster_wide(cluster, sandbox, clusterwide_operator)


# --- RBAC: not more --------------------------------------------------------------------------


def test_operator_service_account_can_do_what_it_needs(control_plane: ControlPlane) -> None:
    install(control_plane)
    allowed = [
        # framework
        ("list", "customresourcedefinitions.apiextensions.k8s.io"),
        ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
        ("list", "namespaces"),
        ("watch", "namespaces"),
        ("create", "events", "-n", "default"),
        # application
        ("list", f"googleclients.{GROUP}", "--all-namespaces"),
        ("watch", f"branches.{GROUP}", "--all-namespaces"),
        ("patch", f"googleclients.{GROUP}", "-n", "default"),
        ("patch", f"branches.{GROUP}", "--subresource=status", "-n", "default"),
        ("patch", f"googleclients.{GROUP}", "--subresource=status", "-n", "default"),
        # Secrets everywhere, by design: it watches every Secret of the namespaces it serves
        # (credentials Secrets by name, its own by label) and writes Secrets next to them.
        ("get", "secrets", "-n", "default"),
        ("list", "secrets", "--all-namespaces"),
        ("watch", "secrets", "--all-namespaces"),
        ("create", "secrets", "-n", "default"),
        ("patch", "secrets", "-n", "default"),
        ("delete", "secrets", "-n", "default"),
        # leader election, in its own namespace
        ("create", "leases.coordination.k8s.io", "-n", OPERATOR_NS),
        ("get", f"leases.coordination.k8s.io/{LEASE}", "-n", OPERATOR_NS),
        ("update", f"leases.coordination.k8s.io/{LEASE}", "-n", OPERATOR_NS),
        # the callback workload, in its own namespace, by name
        ("create", f"deployments.apps/{CALLBACK}", "-n", OPERATOR_NS),
        ("patch", f"deployments.apps/{CALLBACK}", "-n", OPERATOR_NS),
        ("delete", f"deployments.apps/{CALLBACK}", "-n", OPERATOR_NS),
        ("patch", f"services/{CALLBACK}", "-n", OPERATOR_NS),
        ("patch", f"serviceaccounts/{CALLBACK}", "-n", OPERATOR_NS),
    ]
    refused = [args for args in allowed if not can_i(control_plane, OPERATOR_USER, *args)]
    assert not refused, f"the operator's ServiceAccount may not: {refused}"


def test_operator_service_account_cannot_do_more(control_plane: ControlPlane) -> None:
    install(control_plane)
    forbidden = [
        ("*", "*", "--all-namespaces"),
        ("delete", "namespaces"),
        ("create", "namespaces"),
        ("create", "customresourcedefinitions.apiextensions.k8s.io"),
        ("patch", "customresourcedefinitions.apiextensions.k8s.io"),
        ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
        # Its own kinds: it never creates or deletes them (people do); only finalizers/status.
        ("create", f"googleclients.{GROUP}", "-n", "default"),
        ("delete", f"branches.{GROUP}", "-n", "default"),
        # Branches are only watched: no kopf bookkeeping on them, no PUT of any Secret.
        ("patch", f"branches.{GROUP}", "-n", "default"),
        ("update", "secrets", "-n", "default"),
        # Other custom resources (kopf runs standalone: not even kopf's peering objects).
        ("list", "certificates.cert-manager.io", "--all-namespaces"),
        ("patch", "clusterkopfpeerings.kopf.dev"),
        ("create", "kopfexamples.kopf.dev", "-n", "default"),
        # Leases: only its own, only in its namespace; it never deletes one.
        ("update", "leases.coordination.k8s.io/kube-scheduler", "-n", "kube-system"),
        ("update", "leases.coordination.k8s.io/someone-else", "-n", OPERATOR_NS),
        ("delete", f"leases.coordination.k8s.io/{LEASE}", "-n", OPERATOR_NS),
        ("create", "leases.coordination.k8s.io", "-n", "default"),
        # No workloads anywhere but the callback in its own namespace.
        ("create", "pods", "--all-namespaces"),
        ("create", "pods", "-n", OPERATOR_NS),
        ("create", "pods", "-n", "default"),
        ("create", "deployments.apps", "-n", "default"),
        ("create", "deployments.apps/something-else", "-n", OPERATOR_NS),
        ("patch", f"deployments.apps/{OPERATOR}", "-n", OPERATOR_NS),
        ("create", "jobs.batch", "-n", OPERATOR_NS),
        ("list", "pods", "--all-namespaces"),
        ("list", "configmaps", "--all-namespaces"),
        # No way to widen its own rights or to act as someone else.
        ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
        ("create", "rolebindings.rbac.authorization.k8s.io", "-n", OPERATOR_NS),
        ("patch", "clusterroles.rbac.authorization.k8s.io"),
        ("impersonate", "serviceaccounts", "--all-namespaces"),
        ("create", "serviceaccounts/token", "-n", OPERATOR_NS),
        ("deletecollection", "secrets", "-n", "default"),
        # Events: kopf only posts them.
        ("patch", "events", "-n", "default"),
        ("delete", "events", "-n", "default"),
    ]
    granted = [args for args in forbidden if can_i(control_plane, OPERATOR_USER, *args)]
    assert not granted, f"the operator's ServiceAccount may: {granted}"


def test_callback_service_account_has_no_rights_beyond_the_defaults(
    control_plane: ControlPlane, kube_api: client.ApiClient, namespace: str
) -> None:
    install(control_plane)
    # Baseline: a ServiceAccount nobody ever bound to anything.
    create_service_accounts(client.CoreV1Api(kube_api), namespace, "nobody")
    baseline = control_plane.mint_service_account_token(namespace, "nobody")
    token = control_plane.mint_service_account_token(OPERATOR_NS, CALLBACK)
    for where in (OPERATOR_NS, namespace, "default"):
        assert rules_review(control_plane, token, where) == rules_review(
            control_plane, baseline, where
        ), f"the callback ServiceAccount has rules of its own in {where}"

    for args in (
        ("get", "secrets", "-n", OPERATOR_NS),
        ("list", "secrets", "-n", OPERATOR_NS),
        ("list", "secrets", "--all-namespaces"),
        ("watch", "secrets", "--all-namespaces"),
        ("get", f"googleclients.{GROUP}", "-n", namespace),
        ("list", "pods", "-n", OPERATOR_NS),
    ):
        assert not can_i(control_plane, CALLBACK_USER, *args), args

    # With its real token: refused by the API server itself.
    for path in (
        f"/api/v1/namespaces/{OPERATOR_NS}/secrets",
        f"/api/v1/namespaces/{OPERATOR_NS}/secrets/anything",
        "/api/v1/secrets",
        f"/apis/{GROUP}/v1/googleclients",
        f"/apis/{GROUP}/v1alpha1/googleclients",
    ):
        assert api_get(control_plane, token, path).status_code == 403, path
    # ...while the operator's token may list Secrets (positive control of the same request).
    operator_token = control_plane.mint_service_account_token(OPERATOR_NS, OPERATOR)
    assert api_get(control_plane, operator_token, "/api/v1/secrets").status_code == 200
    assert api_get(control_plane, operator_token, "/api/v1/pods").status_code == 403
