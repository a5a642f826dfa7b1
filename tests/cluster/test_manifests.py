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
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import yaml
from kubernetes import client
from kubernetes.client import ApiException

from devkit import ControlPlane
from devkit.servers import SandboxServer
from fixtures.operator import (
    OWNER,
    REPO,
    Cluster,
    OperatorFactory,
    OperatorProcess,
    authorized_client,
    branch_spec,
    hand_over,
    wait_for,
)
from google_token_operator import GROUP
from google_token_operator.settings import ENDPOINT_VARIABLES, Settings
from google_token_sandbox.demo_data import OWNER_LOCATION_IDS

MANIFESTS = REPO / "manifests"
PRODUCTION = MANIFESTS / "overlays" / "production"
KIND = MANIFESTS / "overlays" / "kind"
EXAMPLES = MANIFESTS / "examples"

OPERATOR_NS = "google-token-operator"
OPERATOR = "google-token-operator"
CALLBACK = "google-token-operator-callback"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NS}:{OPERATOR}"
CALLBACK_USER = f"system:serviceaccount:{OPERATOR_NS}:{CALLBACK}"
LEASE = "google-token-operator"
OPERATOR_ARGS = ["run", "--all-namespaces", "--leader-election"]
GOOGLE_VARIABLES = tuple(ENDPOINT_VARIABLES)
# What an RBAC refusal of the operator's own identity looks like in its log (kopf's own
# fallbacks log "Not enough permissions ..."). Matched case-sensitively on purpose.
RBAC_DENIALS = (f'"{OPERATOR_USER}" cannot', "Not enough permissions")


# --- helpers -------------------------------------------------------------------------------


Doc = dict[str, Any]


def render(control_plane: ControlPlane, path: Path) -> list[Doc]:
    """`kubectl kustomize path` as a list of objects."""
    result = control_plane.kubectl("kustomize", str(path), check=False)
    assert result.returncode == 0, f"kubectl kustomize {path} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def pick(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def container(template: Doc, name: str) -> Doc:
    found = [c for c in template["spec"]["containers"] if c["name"] == name]
    assert len(found) == 1, f"expected one container {name!r}"
    return found[0]


def env_of(container_spec: Doc) -> dict[str, Any]:
    return {
        item["name"]: item.get("value", item.get("valueFrom")) for item in container_spec["env"]
    }


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


def can_i(control_plane: ControlPlane, user: str, *args: str) -> bool:
    """`kubectl auth can-i ... --as=user` (the admin may impersonate)."""
    result = control_plane.kubectl("auth", "can-i", *args, f"--as={user}", check=False)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), f"kubectl auth can-i {args}: {result.stdout}{result.stderr}"
    return answer == "yes"


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
    assert operator["image"] == "google-token-operator:0.1.0"
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
    token = control_plane.mint_service_account_token(OPERATOR_NS, OPERATOR)
    path = control_plane.write_kubeconfig(tmp_path / "operator.kubeconfig", token, OPERATOR_USER)
    whoami = subprocess.run(
        [kubectl_binary(control_plane), f"--kubeconfig={path}", "auth", "whoami", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == OPERATOR_USER
    return path


def kubectl_binary(control_plane: ControlPlane) -> str:
    built = control_plane.bin_dir / "kubectl"
    found = str(built) if built.exists() else shutil.which("kubectl")
    assert found, "no kubectl"
    return found


def assert_no_rbac_denials(log: str) -> None:
    for marker in RBAC_DENIALS:
        lines = [line for line in log.splitlines() if marker in line]
        assert not lines, "the operator was refused by RBAC:\n" + "\n".join(lines[:10])


def consent_via_api(cluster: Cluster, sandbox: SandboxServer, port: int, name: str) -> Doc:
    """Google's side through the sandbox (auto-approve), ours through the consent API, as the
    callback pod hands it over."""

    def published() -> str | None:
        body = cluster.get("googleclients", name) or {}
        url = ((body.get("status") or {}).get("authorization") or {}).get("url")
        return str(url) if url else None

    url = wait_for(published, 30, what=f"a consent URL in googleclient {name}")
    sandbox.state.auto_approve = True
    redirect = requests.get(url, allow_redirects=False, timeout=10)
    assert redirect.status_code == 302, redirect.text
    query = dict(parse_qsl(urlsplit(redirect.headers["Location"]).query))
    return hand_over(cluster, port, query, OPERATOR_NS)


def free_the_lease(kube_api: client.ApiClient) -> None:
    """Delete the Lease an earlier operator of this session may still hold (nobody releases
    it on exit), so the next one leads at once instead of after its expiry."""
    try:
        client.CoordinationV1Api(kube_api).delete_namespaced_lease(LEASE, OPERATOR_NS)
    except ApiException as error:
        if error.status != 404:
            raise


def lease(kube_api: client.ApiClient) -> Any:
    return client.CoordinationV1Api(kube_api).read_namespaced_lease(LEASE, OPERATOR_NS)


def test_operator_runs_the_whole_flow_under_its_own_service_account(
    control_plane: ControlPlane,
    kube_api: client.ApiClient,
    cluster: Cluster,
    sandbox: SandboxServer,
    start_operator: OperatorFactory,
    operator_kubeconfig: Path,
) -> None:
    core = client.CoreV1Api(kube_api)
    apps = client.AppsV1Api(kube_api)
    free_the_lease(kube_api)
    # The operator must create the callback workload itself (SSA needs "create" as well).
    for delete in (apps.delete_namespaced_deployment, core.delete_namespaced_service):
        try:
            delete(CALLBACK, OPERATOR_NS)
        except ApiException as error:
            assert error.status == 404
    port = free_port()
    process = start_operator(
        "--leader-election",
        "--consent-port",
        str(port),
        kubeconfig=operator_kubeconfig,
        # The Lease, pending-consent Secrets and the callback workload go where the Role is.
        OPERATOR_NAMESPACE=OPERATOR_NS,
        CONSENT_TTL="120s",
    )
    wait_for(lambda: "Leading:" in process.log(), 30, what="the operator to take the Lease")

    # A client with a grant, two Branches: tokens refreshed, Secrets written, status patched.
    authorized_client(cluster, sandbox)
    for branch, location in zip(("old-town", "harbour"), OWNER_LOCATION_IDS, strict=False):
        cluster.create("branches", branch, branch_spec(location))
    cluster.wait_condition("googleclients", "acme", "Ready", "True", timeout=60)
    for branch in ("old-town", "harbour"):
        cluster.wait_condition("branches", branch, "Ready", "True", timeout=60)
        assert (cluster.secret(f"{branch}-google-token") or {}).get("access_token")

    # A client that needs consent: state Secret in the operator's namespace, the callback
    # workload started there, the code exchanged through the consent API.
    cluster.create(
        "googleclients",
        "fresh",
        {"credentialsSecretRef": {"name": "acme-oauth"}, "loginHint": OWNER},
    )
    answer = consent_via_api(cluster, sandbox, port, "fresh")
    assert answer["outcome"] == "authorized", answer
    cluster.wait_condition("googleclients", "fresh", "Authorized", "True", timeout=30)
    cluster.wait_condition("googleclients", "fresh", "Ready", "True", timeout=30)
    callback = wait_for(
        lambda: _read_or_none(apps.read_namespaced_deployment, CALLBACK, OPERATOR_NS),
        30,
        what="the callback Deployment, applied by the operator",
    )
    managers = {entry.manager for entry in callback.metadata.managed_fields or []}
    assert OPERATOR in managers, managers
    assert _read_or_none(core.read_namespaced_service, CALLBACK, OPERATOR_NS) is not None
    assert cluster.events("acme"), "no Events were posted"

    # Deletion: finalizers removed, owned Secrets deleted, under the same identity.
    cluster.delete("branches", "harbour")
    wait_for(lambda: cluster.get("branches", "harbour") is None, 30, what="branch deleted")
    wait_for(lambda: cluster.secret("harbour-google-token") is None, 30, what="its Secret gone")
    for name in ("acme", "fresh"):
        cluster.delete("googleclients", name)
    for name in ("acme", "fresh"):
        wait_for(lambda n=name: cluster.get("googleclients", n) is None, 30, what=f"{name} gone")
        for suffix in ("google-oauth", "google-token"):
            secret = f"{name}-{suffix}"
            wait_for(lambda s=secret: cluster.secret(s) is None, 30, what=f"{secret} deleted")

    # The Lease was taken (create) and renewed since (get + update), by this process.
    def renewed() -> Any:
        found = lease(kube_api)
        return found if found.spec.renew_time > found.spec.acquire_time else None

    held = wait_for(renewed, 15, what="a Lease renewal")
    assert process.process is not None
    assert held.spec.holder_identity.endswith(f"-{process.process.pid}")
    assert process.running
    log = process.log()
    assert_no_rbac_denials(log)
    assert not re.search(r"\b(403|Forbidden)\b", log), "a request was forbidden"


def _read_or_none(read: Any, name: str, namespace: str) -> Any:
    try:
        return read(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


@pytest.fixture
def clusterwide_operator(
    kube_api: client.ApiClient,
    sandbox: SandboxServer,
    operator_kubeconfig: Path,
    test_output: Path,
) -> Iterator[OperatorProcess]:
    """The operator with the Deployment's own arguments, under the ServiceAccount's token."""
    free_the_lease(kube_api)
    env = {
        **os.environ,
        **sandbox.env,
        "KUBECONFIG": str(operator_kubeconfig),
        "OPERATOR_NAMESPACE": OPERATOR_NS,
        "PYTHONUNBUFFERED": "1",
    }
    ports = ["--metrics-port", "0", "--liveness-port", "0", "--consent-port", str(free_port())]
    process = OperatorProcess(
        [*OPERATOR_ARGS[1:], *ports, "--verbose"], env, test_output / "clusterwide.log"
    ).start()
    try:
        yield process
    finally:
        process.stop()


def test_operator_runs_cluster_wide_under_its_service_account(
    cluster: Cluster,
    sandbox: SandboxServer,
    clusterwide_operator: OperatorProcess,
) -> None:
    # --all-namespaces: cluster-wide watches of its resources and of Secrets, and a client
    # served end to end. (Objects other tests left in their Terminating namespaces are served
    # too; writes there are refused by the namespace lifecycle, never by RBAC, which is what
    # is checked here.)
    wait_for(lambda: "Leading:" in clusterwide_operator.log(), 30, what="the Lease taken")
    authorized_client(cluster, sandbox)
    cluster.wait_condition("googleclients", "acme", "Ready", "True", timeout=60)
    cluster.delete("googleclients", "acme")
    wait_for(lambda: cluster.get("googleclients", "acme") is None, 30, what="acme deleted")
    assert clusterwide_operator.running
    assert_no_rbac_denials(clusterwide_operator.log())


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
        f"/apis/{GROUP}/v1alpha1/googleclients",
    ):
        assert api_get(control_plane, token, path).status_code == 403, path
    # ...while the operator's token may list Secrets (positive control of the same request).
    operator_token = control_plane.mint_service_account_token(OPERATOR_NS, OPERATOR)
    assert api_get(control_plane, operator_token, "/api/v1/secrets").status_code == 200
    assert api_get(control_plane, operator_token, "/api/v1/pods").status_code == 403
