"""charts/google-token-operator: lint clean, the same objects as the kustomize manifests for the
same settings, installed, upgraded and uninstalled by Helm on a real API server, and enough RBAC
for the real operator running under the chart's ServiceAccount.

helm is built once from the Go module pinned in hack/helm (devkit.gotools).

The chart and kustomize cannot produce byte-identical YAML (comments, key order, flow lists), so
the comparison is of parsed objects, keyed by kind, namespace and name, after two documented
normalizations:
- Helm's own labels (helm.sh/chart, app.kubernetes.io/managed-by, app.kubernetes.io/instance)
  are checked, then stripped, and so is the CRDs' annotation helm.sh/resource-policy: keep
  (crds.keep, which kustomize has no use for);
- container env lists are compared sorted by name: kustomize's strategic merge puts the
  entries an overlay patches first, the chart writes them in a fixed order, and no entry
  refers to another ($(VAR)), so the order means nothing.
The kustomize Namespace has no counterpart: the chart installs into the release namespace
(`--namespace google-token-operator --create-namespace`) and never owns it, as Helm charts do,
so `helm uninstall` cannot delete the namespace with what the operator keeps in it.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
import shutil
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from devkit import ControlPlane
from devkit.releases import PREVIOUS_RELEASE, previous_release_tree
from devkit.servers import SandboxServer
from fixtures.installs import (
    CHART,
    MANIFESTS,
    OPERATOR,
    OPERATOR_NS,
    OPERATOR_USER,
    PRODUCTION,
    RELEASE,
    Doc,
    Helm,
    can_i,
    check_cluster_wide,
    clusterwide_operator_process,
    container,
    env_of,
    fresh_api_server,
    inventory,
    pick,
    render,
    run_whole_flow,
    service_account_kubeconfig,
)
from fixtures.operator import REPO, Cluster, OperatorFactory, wait_for
from google_token_operator.consent.workload import callback_pod_template
from google_token_operator.settings import Settings

COMPONENTS = MANIFESTS / "components"
GROUP = "google-token-operator.dev"
PLURALS = {"GoogleClient": "googleclients", "Branch": "branches"}
CHART_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
HELM_LABELS = {
    "helm.sh/chart": f"google-token-operator-{CHART_VERSION}",
    "app.kubernetes.io/managed-by": "Helm",
    "app.kubernetes.io/instance": RELEASE,
}
KEEP = "helm.sh/resource-policy"

# Chart values -> the kustomize components that give the same install on top of the
# production overlay.
SETTINGS: dict[str, tuple[Doc, list[str]]] = {
    "production": ({}, []),
    "namespaced": ({"watchNamespaces": ["reviews"]}, ["namespaced"]),
    "callback-ingress": ({"ingress": {"enabled": True}}, ["callback-ingress"]),
    "monitoring": (
        {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
        ["service-monitor", "alerts"],
    ),
}


def values_file(folder: Path, values: Doc, name: str = "values.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(values))
    return path


def kustomize_with(control_plane: ControlPlane, folder: Path, components: list[str]) -> list[Doc]:
    """`kubectl kustomize` of the production overlay with these components added."""
    overlay = folder / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                # kustomize takes relative paths only
                "resources": [os.path.relpath(PRODUCTION, overlay)],
                "components": [os.path.relpath(COMPONENTS / c, overlay) for c in components],
            }
        )
    )
    return render(control_plane, overlay)


def without_helm_labels(doc: Doc) -> Doc:
    labels = dict(doc["metadata"].get("labels") or {})
    where = f"{doc['kind']}/{doc['metadata']['name']}"
    for label, value in HELM_LABELS.items():
        assert labels.pop(label, None) == value, f"{where} lacks the label {label}={value}"
    metadata = {**doc["metadata"], "labels": labels}
    if doc["kind"] == "CustomResourceDefinition":
        annotations = dict(metadata.pop("annotations", None) or {})
        assert annotations.pop(KEEP) == "keep", f"{where}: {KEEP} is not keep"
        metadata.update({"annotations": annotations} if annotations else {})
    return {**doc, "metadata": metadata}


def env_sorted(doc: Doc) -> Doc:
    doc = json.loads(json.dumps(doc))
    pod = (doc.get("spec") or {}).get("template", {}).get("spec") or {}
    for item in pod.get("containers", []):
        if "env" in item:
            item["env"] = sorted(item["env"], key=lambda entry: entry["name"])
    return doc


def keyed(docs: list[Doc]) -> dict[str, Doc]:
    result: dict[str, Doc] = {}
    for doc in docs:
        meta = doc["metadata"]
        key = f"{doc['kind']} {meta.get('namespace', '-')}/{meta['name']}"
        assert key not in result, f"{key} twice"
        result[key] = env_sorted(doc)
    return result


def differences(expected: dict[str, Doc], got: dict[str, Doc]) -> str:
    lines: list[str] = []
    for key in sorted(expected.keys() | got.keys()):
        a = yaml.safe_dump(expected.get(key), sort_keys=True).splitlines()
        b = yaml.safe_dump(got.get(key), sort_keys=True).splitlines()
        if a != b:
            lines += difflib.unified_diff(a, b, f"kustomize {key}", f"helm {key}", lineterm="")
    return "\n".join(lines)


# --- the chart as it is ----------------------------------------------------------------------


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_helm_lint_is_clean(helm: Helm, tmp_path: Path, setting: str) -> None:
    values = values_file(tmp_path, SETTINGS[setting][0])
    result = helm.run("lint", "--strict", str(CHART), "--values", str(values), check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "1 chart(s) linted, 0 chart(s) failed" in output, output
    assert "[WARNING]" not in output and "[ERROR]" not in output, output
    notes = sorted({line.strip() for line in output.splitlines() if "INFO" in line})
    print(f"\nhelm lint --strict ({setting}): clean; notes: {notes}")


def test_values_schema_refuses_what_the_chart_cannot_use(helm: Helm, tmp_path: Path) -> None:
    for values, refusal in (
        ({"replica": 3}, "additional properties 'replica' not allowed"),
        ({"watchNamespaces": ["Reviews"]}, "does not match pattern"),
        ({"callbackURL": "consent.example.com/callback"}, "does not match pattern"),
        ({"logFormat": "xml"}, "value must be one of"),
        ({"callback": {"imagePullSecrets": ["Reg_Cred"]}}, "does not match pattern"),
        ({"callback": {"resources": {"request": {"cpu": "1"}}}}, "additional properties"),
        ({"callback": {"tolerations": [{"key": "k", "colour": "red"}]}}, "additional properties"),
        ({"crds": {"install": True}}, "additional properties 'install' not allowed"),
        ({"podLabels": {"app.kubernetes.io/component": "x"}}, "'not' failed"),
        ({"extraArgs": ["verbose"]}, "does not match pattern"),
        ({"serviceAccount": {"name": "Operator"}}, "does not match pattern"),
        ({"podDisruptionBudget": {"minAvailable": True}}, "got boolean, want integer or string"),
        ({"fullnameOverride": "Reviews"}, "does not match pattern"),
        ({"callback": {"idle": "5 minutes"}}, "does not match pattern"),
    ):
        path = values_file(tmp_path, values)
        result = helm.run("template", RELEASE, str(CHART), "--values", str(path), check=False)
        assert result.returncode != 0 and refusal in result.stderr, (values, result.stderr)


def test_callback_values_reach_the_callback_pods_through_the_operators_settings(
    helm: Helm, tmp_path: Path
) -> None:
    """callback.* values -> CALLBACK_* variables -> Settings -> the callback pod spec."""
    toleration = {"key": "edge", "operator": "Exists", "effect": "NoSchedule"}
    values = {
        "callback": {
            "imagePullSecrets": ["regcred", "mirror-pull"],
            "resources": {"requests": {"cpu": 0.05, "memory": "64Mi"}},
            "nodeSelector": {"node-role/edge": "true"},
            "tolerations": [toleration],
            "priorityClassName": "consent-critical",
            "trustProxy": True,
            "alwaysOn": True,
            "idle": "1h30m",
        }
    }
    [deployment] = [
        doc for doc in helm.template(values_file(tmp_path, values)) if doc["kind"] == "Deployment"
    ]
    env = env_of(container(deployment["spec"]["template"], "operator"))
    settings = Settings.from_env({**env, "OPERATOR_NAMESPACE": OPERATOR_NS})
    spec = callback_pod_template(settings, OPERATOR_NS)["spec"]

    assert {key: spec.get(key) for key in values["callback"] if key in spec} == {
        "imagePullSecrets": [{"name": "regcred"}, {"name": "mirror-pull"}],
        "nodeSelector": {"node-role/edge": "true"},
        "tolerations": [toleration],
        "priorityClassName": "consent-critical",
    }
    [callback] = spec["containers"]
    assert callback["resources"] == {"requests": {"cpu": "0.05", "memory": "64Mi"}}
    assert "--trust-proxy" in callback["args"]
    assert settings.callback_always_on
    assert settings.callback_idle == dt.timedelta(hours=1, minutes=30)


def test_the_values_users_know_from_other_charts_reach_the_objects(
    helm: Helm, tmp_path: Path
) -> None:
    """serviceAccount.*, nameOverride/fullnameOverride, pod labels and annotations,
    topologySpreadConstraints, extraArgs, the PodDisruptionBudget and crds.*."""
    spread = {
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "operator"}},
    }
    values = {
        "fullnameOverride": "tokens",
        "serviceAccount": {"create": False, "name": "workload-identity"},
        "podAnnotations": {"example.com/scrape": "no"},
        "podLabels": {"team": "reviews"},
        "topologySpreadConstraints": [spread],
        "extraArgs": ["--verbose"],
        "podDisruptionBudget": {"enabled": True, "maxUnavailable": "50%"},
        "crds": {"enabled": False},
        "watchNamespaces": ["reviews"],
    }
    docs = helm.template(values_file(tmp_path, values))
    names = {(doc["kind"], doc["metadata"]["name"]) for doc in docs}
    assert not any(kind == "CustomResourceDefinition" for kind, _ in names)
    # The chart's own objects carry the override; what the operator finds by name does not.
    assert {
        ("Deployment", "tokens"),
        ("ClusterRole", "tokens"),
        ("ClusterRole", "tokens-watched"),
        ("ClusterRoleBinding", "tokens"),
        ("Role", "tokens"),
        ("RoleBinding", "tokens"),
        ("RoleBinding", "tokens-watched"),
        ("PodDisruptionBudget", "tokens"),
        ("NetworkPolicy", "tokens"),
        ("Service", OPERATOR),
        ("ServiceAccount", "google-token-operator-callback"),
    } <= names, sorted(names)
    assert [n for kind, n in names if kind == "ServiceAccount"] == [
        "google-token-operator-callback"
    ]
    bindings = [doc for doc in docs if doc["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    assert {s["name"] for b in bindings for s in b["subjects"]} == {"workload-identity"}

    template = pick(docs, "Deployment", "tokens")["spec"]["template"]
    assert template["metadata"]["annotations"] == {"example.com/scrape": "no"}
    assert template["metadata"]["labels"] == {
        "app.kubernetes.io/name": OPERATOR,
        "app.kubernetes.io/component": "operator",
        "team": "reviews",
    }
    assert template["spec"]["serviceAccountName"] == "workload-identity"
    assert template["spec"]["topologySpreadConstraints"] == [spread]
    assert container(template, "operator")["args"] == ["run", "--leader-election", "--verbose"]
    budget = pick(docs, "PodDisruptionBudget", "tokens")["spec"]
    selector = {"app.kubernetes.io/name": OPERATOR, "app.kubernetes.io/component": "operator"}
    assert budget == {"maxUnavailable": "50%", "selector": {"matchLabels": selector}}

    # A created ServiceAccount takes the annotations; nameOverride suffixes another release.
    values = {"serviceAccount": {"annotations": {"iam.gke.io/gcp-service-account": "a@b.c"}}}
    other = helm.run(
        "template",
        "reviews",
        str(CHART),
        "--values",
        str(values_file(tmp_path, values)),
        "--set",
        "nameOverride=tokens",
    )
    docs = [doc for doc in yaml.safe_load_all(other.stdout) if doc]
    account = pick(docs, "ServiceAccount", "reviews-tokens")
    assert account["metadata"]["annotations"] == {"iam.gke.io/gcp-service-account": "a@b.c"}
    assert pick(docs, "Deployment", "reviews-tokens")

    # The CRDs are the release's (crds.enabled, the default), kept on uninstall unless told.
    for keep, wanted in ((True, {KEEP: "keep"}), (False, None)):
        path = values_file(tmp_path, {"crds": {"keep": keep}})
        crds = [doc for doc in helm.template(path) if doc["kind"] == "CustomResourceDefinition"]
        assert len(crds) == len(list((REPO / "crds").glob("*.yaml")))
        assert all(crd["metadata"].get("annotations") == wanted for crd in crds), keep


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_chart_renders_the_kustomize_objects_for_the_same_settings(
    control_plane: ControlPlane, helm: Helm, tmp_path: Path, setting: str
) -> None:
    values, components = SETTINGS[setting]
    kustomized = kustomize_with(control_plane, tmp_path, components)
    namespaces = [doc for doc in kustomized if doc["kind"] == "Namespace"]
    assert [n["metadata"]["name"] for n in namespaces] == [OPERATOR_NS]
    expected = keyed([doc for doc in kustomized if doc["kind"] != "Namespace"])
    charted = helm.template(values_file(tmp_path, values))
    got = keyed([without_helm_labels(doc) for doc in charted])
    assert got == expected, differences(expected, got)
    kinds = sorted(key.split()[0] for key in got)
    print(f"\n{setting}: {len(got)} objects equal ({', '.join(kinds)})")


def test_the_migrate_storage_hook_runs_the_command_with_the_components_rules(
    helm: Helm, tmp_path: Path
) -> None:
    """Off by default; on, a post-upgrade Job with its own ServiceAccount bound to the rules of
    manifests/components/migrate-storage (their one source, through files/)."""
    assert not [
        doc
        for doc in helm.template(values_file(tmp_path, {}))
        if doc["metadata"]["name"].endswith("migrate-storage")
    ]
    hooks = keyed(helm.template(values_file(tmp_path, {"migrateStorage": {"enabled": True}})))
    name = f"{RELEASE}-migrate-storage"
    component = yaml.safe_load((COMPONENTS / "migrate-storage" / "clusterrole.yaml").read_text())
    for key in (
        f"ServiceAccount {OPERATOR_NS}/{name}",
        f"ClusterRole -/{name}",
        f"ClusterRoleBinding -/{name}",
        f"Job {OPERATOR_NS}/{name}",
    ):
        assert hooks[key]["metadata"]["annotations"]["helm.sh/hook"] == "post-upgrade", key
    assert hooks[f"ClusterRole -/{name}"]["rules"] == component["rules"]
    binding = hooks[f"ClusterRoleBinding -/{name}"]
    assert binding["roleRef"]["name"] == name
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": name, "namespace": OPERATOR_NS}
    ]
    pod = hooks[f"Job {OPERATOR_NS}/{name}"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == name
    assert pod["containers"][0]["args"] == ["migrate-storage"]
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def test_packaged_chart_holds_the_crds_and_rules_from_their_one_source(
    helm: Helm, tmp_path: Path
) -> None:
    """files/crds and files/prometheusrule.yaml are links to crds/ and the alerts component
    (one source each); `helm package` stores their content, so the published chart needs no
    link and renders the same objects."""
    crds = CHART / "files" / "crds"
    assert crds.is_symlink() and crds.resolve() == REPO / "crds"
    rules = CHART / "files" / "prometheusrule.yaml"
    assert rules.is_symlink()
    assert rules.resolve() == COMPONENTS / "alerts" / "prometheusrule.yaml"

    helm.run("package", str(CHART), "--destination", str(tmp_path))
    archive = tmp_path / f"google-token-operator-{CHART_VERSION}.tgz"
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        for source in sorted((REPO / "crds").glob("*.yaml")):
            member = members[f"google-token-operator/files/crds/{source.name}"]
            stored = tar.extractfile(member)
            assert member.isfile() and stored is not None
            assert stored.read() == source.read_bytes(), source.name
        stored = tar.extractfile(members["google-token-operator/files/prometheusrule.yaml"])
        assert stored is not None and stored.read() == rules.read_bytes()
        assert "google-token-operator/files/crds/Kustomization" not in members  # .helmignore
    everything = values_file(tmp_path, {k: v for s in SETTINGS.values() for k, v in s[0].items()})
    assert helm.template(everything, archive) == helm.template(everything)


# --- Helm on a fresh API server --------------------------------------------------------------


@pytest.fixture
def fresh_plane() -> Iterator[ControlPlane]:
    """An API server of its own for each test, as a new cluster: nothing installed, no CRDs."""
    with fresh_api_server() as plane:
        yield plane


def timed(action: Callable[[], Any]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


Rights = dict[tuple[str, ...], bool]


def until_authorized(plane: ControlPlane, rights: Rights, timeout: float = 30) -> float:
    """Wait until the API server's authorizer answers `kubectl auth can-i` as in `rights` for
    the operator's ServiceAccount; the seconds it took. RBAC objects reach the authorizer
    through its informers, a moment after they are stored."""
    started = time.monotonic()

    def settled() -> bool:
        return all(can_i(plane, OPERATOR_USER, *args) == want for args, want in rights.items())

    wait_for(settled, timeout, interval=0.1, what=f"the operator's rights to be {rights}")
    return time.monotonic() - started


def test_helm_install_upgrade_uninstall_on_a_fresh_api_server(
    fresh_plane: ControlPlane, helm: Helm, tmp_path: Path
) -> None:
    kubeconfig = fresh_plane.kubeconfig
    before = inventory(fresh_plane)
    release = ["--namespace", OPERATOR_NS]
    # An older chart: the same, but its GoogleClient CRD lacks the printer columns (a CRD
    # change that the upgrade below must bring, as crds.enabled promises).
    older = tmp_path / "older"
    shutil.copytree(CHART, older)  # the links' content, as `helm package` stores it
    older_crd = older / "files" / "crds" / "googleclients.yaml"
    crd = yaml.safe_load(older_crd.read_text())
    current_columns = crd["spec"]["versions"][0].pop("additionalPrinterColumns")
    older_crd.write_text(yaml.safe_dump(crd))

    def printer_columns() -> Any:
        stored = fresh_plane.kubectl(
            "get", "crd", "googleclients.google-token-operator.dev", "-o", "json"
        )
        return json.loads(stored.stdout)["spec"]["versions"][0].get("additionalPrinterColumns")

    installed = timed(
        lambda: helm.run(
            "install", RELEASE, str(older), *release, "--create-namespace", kubeconfig=kubeconfig
        )
    )
    assert printer_columns() is None
    fresh_plane.kubectl(
        "label", "namespace", OPERATOR_NS, "pod-security.kubernetes.io/enforce=restricted"
    )
    manifest = helm.manifest(kubeconfig)
    stored = fresh_plane.kubectl(
        "get",
        "-f",
        "-",
        "-o",
        "name",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifest}),
    )
    # Every object of the release, the CRDs included (crds.enabled).
    assert len(stored.stdout.split()) == len(manifest) == 12, stored.stdout
    for crd in ("googleclients", "branches"):
        fresh_plane.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            f"crd/{crd}.google-token-operator.dev",
        )
    status = json.loads(
        helm.run("status", RELEASE, *release, "-o", "json", kubeconfig=kubeconfig).stdout
    )
    assert (status["info"]["status"], status["version"]) == ("deployed", 1)
    # All namespaces: the operator may read Secrets everywhere.
    until_authorized(fresh_plane, {("list", "secrets", "--all-namespaces"): True})

    # Upgrade to the namespaced mode, another callback URL with its Ingress, no NetworkPolicy.
    fresh_plane.kubectl("create", "namespace", "reviews")
    values = values_file(
        tmp_path,
        {
            "watchNamespaces": ["reviews"],
            "callbackURL": "https://consent.example.org/google/callback",
            "ingress": {"enabled": True},
            "networkPolicy": {"enabled": False},
        },
    )
    upgraded = timed(
        lambda: helm.run(
            "upgrade", RELEASE, str(CHART), *release, "--values", str(values), kubeconfig=kubeconfig
        )
    )
    apps = json.loads(
        fresh_plane.kubectl("get", "deployment", OPERATOR, "-n", OPERATOR_NS, "-o", "json").stdout
    )
    operator = container(apps["spec"]["template"], "operator")
    assert operator["args"] == ["run", "--leader-election"]
    env = env_of(operator)
    assert env["WATCH_NAMESPACES"] == "reviews"
    assert env["CALLBACK_URL"] == "https://consent.example.org/google/callback"
    ingress = json.loads(
        fresh_plane.kubectl(
            "get", "ingress", "google-token-operator-callback", "-n", OPERATOR_NS, "-o", "json"
        ).stdout
    )
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "consent.example.org"
    assert rule["http"]["paths"][0]["path"] == "/google/callback"
    assert ingress["spec"]["tls"][0]["hosts"] == ["consent.example.org"]
    policies = fresh_plane.kubectl("get", "networkpolicies", "-n", OPERATOR_NS, "-o", "name")
    assert policies.stdout.strip() == "", "the upgrade left NetworkPolicies"
    # Secrets in the watched namespace only.
    until_authorized(
        fresh_plane,
        {
            ("list", "secrets", "-n", "reviews"): True,
            ("patch", "googleclients.google-token-operator.dev", "-n", "reviews"): True,
            ("list", "secrets", "--all-namespaces"): False,
            ("get", "secrets", "-n", "default"): False,
        },
    )
    status = json.loads(
        helm.run("status", RELEASE, *release, "-o", "json", kubeconfig=kubeconfig).stdout
    )
    assert (status["info"]["status"], status["version"]) == ("deployed", 2)
    # The CRD as crds/ has it now: `helm upgrade` upgraded it.
    assert printer_columns() == current_columns

    uninstalled = timed(lambda: helm.run("uninstall", RELEASE, *release, kubeconfig=kubeconfig))
    # Nothing is left but what Helm leaves by design: the CRDs (crds.keep), with the
    # APIService the API server registers for their group, and the namespaces (created by
    # --create-namespace and by this test).
    left = inventory(fresh_plane) - before
    assert left == {
        "CustomResourceDefinition -/googleclients.google-token-operator.dev",
        "CustomResourceDefinition -/branches.google-token-operator.dev",
        "APIService -/v1.google-token-operator.dev",
        "APIService -/v1alpha1.google-token-operator.dev",
        f"Namespace -/{OPERATOR_NS}",
        "Namespace -/reviews",
    }, sorted(left)
    assert before <= inventory(fresh_plane)
    print(
        f"\nhelm install {installed:.1f} s ({len(manifest)} objects, 2 of them CRDs), "
        f"upgrade {upgraded:.1f} s (a CRD changed), uninstall {uninstalled:.1f} s; "
        "left: CRDs and namespaces"
    )


def test_helm_upgrade_from_the_previous_releases_chart(
    fresh_plane: ControlPlane, helm: Helm, tmp_path: Path
) -> None:
    """The previous release's chart, packaged from its own tree (hack/devkit/releases.py; the
    links to its crds/ resolved by `helm package`), installed; objects of that release's
    examples created under it (v1alpha1); `helm upgrade` to this chart: the CRDs now store v1
    and still serve v1alpha1, and every object reads as v1 with its spec as created."""
    kubeconfig = fresh_plane.kubeconfig
    release = ["--namespace", OPERATOR_NS]
    previous = previous_release_tree()
    helm.run("package", str(previous / "charts" / "google-token-operator"), "-d", str(tmp_path))
    [previous_chart] = tmp_path.glob("google-token-operator-*.tgz")
    installed = timed(
        lambda: helm.run(
            "install",
            RELEASE,
            str(previous_chart),
            *release,
            "--create-namespace",
            kubeconfig=kubeconfig,
        )
    )
    assert served_versions(fresh_plane) == {
        "googleclients": {"v1alpha1": True},
        "branches": {"v1alpha1": True},
    }

    fresh_plane.kubectl("create", "namespace", "reviews")
    created: dict[tuple[str, str], Doc] = {}
    for example in ("googleclient.yaml", "branches.yaml"):
        for doc in yaml.safe_load_all((previous / "manifests" / "examples" / example).read_text()):
            assert doc["apiVersion"] == f"{GROUP}/v1alpha1", example
            stored = fresh_plane.kubectl(
                "create", "-n", "reviews", "-f", "-", "-o", "json", input=json.dumps(doc)
            )
            # As the API server stored it, with its defaults.
            spec = json.loads(stored.stdout)["spec"]
            created[PLURALS[doc["kind"]], doc["metadata"]["name"]] = spec

    upgraded = timed(
        lambda: helm.run("upgrade", RELEASE, str(CHART), *release, kubeconfig=kubeconfig)
    )
    status = json.loads(
        helm.run("status", RELEASE, *release, "-o", "json", kubeconfig=kubeconfig).stdout
    )
    assert (status["info"]["status"], status["version"]) == ("deployed", 2)
    # v1 stored, v1alpha1 still served, as this tree's crds/ have them.
    assert served_versions(fresh_plane) == {
        plural: {"v1alpha1": False, "v1": True} for plural in ("googleclients", "branches")
    }
    for (plural, name), spec in created.items():
        for version in ("v1", "v1alpha1"):
            found = json.loads(
                fresh_plane.kubectl(
                    "get", f"{plural}.{version}.{GROUP}", name, "-n", "reviews", "-o", "json"
                ).stdout
            )
            assert found["apiVersion"] == f"{GROUP}/{version}"
            assert found["spec"] == spec, (plural, name, version)
    print(
        f"\nhelm upgrade from the previous release ({PREVIOUS_RELEASE[:12]}): install "
        f"{installed:.1f} s, {len(created)} v1alpha1 objects, upgrade {upgraded:.1f} s; "
        "all read as v1"
    )


def served_versions(plane: ControlPlane) -> dict[str, dict[str, bool]]:
    """plural -> {served version: whether it is the storage version}, for both CRDs."""
    found = {}
    for plural in ("googleclients", "branches"):
        crd = f"crd/{plural}.{GROUP}"
        plane.kubectl("wait", "--for=condition=Established", "--timeout=30s", crd)
        versions = json.loads(plane.kubectl("get", crd, "-o", "json").stdout)["spec"]["versions"]
        found[plural] = {v["name"]: v["storage"] for v in versions if v["served"]}
    return found


# --- the operator under the chart's ServiceAccount --------------------------------------------


ChartInstaller = Callable[[Doc], list[Doc]]


@pytest.fixture
def install_chart(
    control_plane: ControlPlane, helm: Helm, tmp_path: Path
) -> Iterator[ChartInstaller]:
    """Install the chart on the session's API server in place of the kustomize install (the
    object names are the same); uninstall it afterwards. Later kustomize tests apply theirs
    again, as each of them does. The CRDs stay kustomize's (crds.enabled false), as every
    other test of the session uses them."""
    kubeconfig = control_plane.kubeconfig
    release = ["--namespace", OPERATOR_NS]

    def install(values: Doc) -> list[Doc]:
        helm.run("uninstall", RELEASE, *release, "--ignore-not-found", kubeconfig=kubeconfig)
        kustomized = render(control_plane, PRODUCTION)
        # The namespace stays (as a user creates it, labelled "restricted"), the CRDs too.
        control_plane.kubectl(
            "apply", "-f", "-", input=json.dumps(pick(kustomized, "Namespace", OPERATOR_NS))
        )
        others = [
            d for d in kustomized if d["kind"] not in ("Namespace", "CustomResourceDefinition")
        ]
        control_plane.kubectl(
            "delete",
            "--ignore-not-found",
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": others}),
        )
        helm.run(
            "install",
            RELEASE,
            str(CHART),
            *release,
            "--values",
            str(values_file(tmp_path, {**values, "crds": {"enabled": False}})),
            kubeconfig=kubeconfig,
        )
        # The operator starts right away, and no 403 is allowed: its rights must be in force.
        watched = values.get("watchNamespaces") or ["default"]
        lease = "leases.coordination.k8s.io/google-token-operator"
        waited = until_authorized(
            control_plane,
            {
                ("get", lease, "-n", OPERATOR_NS): True,
                ("create", "secrets", "-n", OPERATOR_NS): True,
                ("list", "customresourcedefinitions.apiextensions.k8s.io"): True,
                **{
                    ("patch", "googleclients.google-token-operator.dev", "-n", n): True
                    for n in watched
                },
            },
        )
        print(f"\nthe chart's RBAC was in force {waited:.2f} s after helm install")
        return helm.manifest(kubeconfig)

    try:
        yield install
    finally:
        helm.run("uninstall", RELEASE, *release, "--ignore-not-found", kubeconfig=kubeconfig)


@pytest.mark.parametrize("mode", ["all-namespaces", "namespaced"])
def test_operator_runs_the_whole_flow_under_the_charts_service_account(
    # First, so that it is torn down (helm uninstall) after the operator has stopped.
    install_chart: ChartInstaller,
    control_plane: ControlPlane,
    kube_api: client.ApiClient,
    cluster: Cluster,
    sandbox: SandboxServer,
    start_operator: OperatorFactory,
    tmp_path: Path,
    mode: str,
) -> None:
    namespaced = mode == "namespaced"
    manifest = install_chart({"watchNamespaces": [cluster.namespace]} if namespaced else {})
    operator = container(pick(manifest, "Deployment", OPERATOR)["spec"]["template"], "operator")
    if namespaced:
        # What the Deployment runs is what the flow runs: `-n` is WATCH_NAMESPACES.
        assert env_of(operator)["WATCH_NAMESPACES"] == cluster.namespace
        assert "--all-namespaces" not in operator["args"]
        until_authorized(control_plane, {("list", "secrets", "--all-namespaces"): False})
    kubeconfig = service_account_kubeconfig(control_plane, tmp_path / "operator.kubeconfig")
    started = time.monotonic()
    run_whole_flow(kube_api, cluster, sandbox, start_operator, kubeconfig)
    print(
        f"\n{mode}: the whole flow under the chart's ServiceAccount, no 403, "
        f"in {time.monotonic() - started:.1f} s"
    )


def test_operator_runs_cluster_wide_under_the_charts_service_account(
    control_plane: ControlPlane,
    kube_api: client.ApiClient,
    cluster: Cluster,
    sandbox: SandboxServer,
    install_chart: ChartInstaller,
    tmp_path: Path,
    test_output: Path,
) -> None:
    manifest = install_chart({})
    operator = container(pick(manifest, "Deployment", OPERATOR)["spec"]["template"], "operator")
    assert operator["args"] == ["run", "--all-namespaces", "--leader-election"]
    kubeconfig = service_account_kubeconfig(control_plane, tmp_path / "operator.kubeconfig")
    with clusterwide_operator_process(
        kube_api, sandbox, kubeconfig, test_output / "chart-clusterwide.log", operator["args"][1:]
    ) as process:
        check_cluster_wide(cluster, sandbox, process)
