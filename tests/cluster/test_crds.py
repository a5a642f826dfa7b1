"""The CRDs on the real API server: bad objects are refused at apply time, naming the field."""

from __future__ import annotations

import json

import pytest

from devkit import ControlPlane

GOOD_CLIENT = {"credentialsSecretRef": {"name": "acme-oauth"}}
GOOD_BRANCH = {"clientRef": {"name": "acme"}, "accountId": "123", "locationId": "456"}
TEMPLATE = {
    "metadata": {
        "labels": {"reloader.example.com/watch": "true"},
        "annotations": {"example.com/team": "reviews {owner}"},
    },
    "data": {
        "authorization": "Bearer {{ access_token }}",
        ".env": "GOOGLE_TOKEN={{access_token}}\nGOOGLE_TOKEN_EXPIRY={{ expiry }}\n",
        "who": "{{ account_email }} {single} brace{",
    },
}
BRANCH_TEMPLATE = {"data": {"where": "{{ location_name }} of {{ account_id }}/{{ location_id }}"}}


def templated(data: dict[str, str]) -> dict[str, object]:
    return {**GOOD_CLIENT, "secretTemplate": {"data": data}}


def manifest(kind: str, namespace: str, spec: dict[str, object]) -> str:
    return json.dumps(
        {
            "apiVersion": "google-token-operator.dev/v1",
            "kind": kind,
            "metadata": {"name": "subject", "namespace": namespace},
            "spec": spec,
        }
    )


BAD_OBJECTS = [
    ("GoogleClient", {}, "spec.credentialsSecretRef: Required value"),
    ("GoogleClient", {**GOOD_CLIENT, "refreshBefore": "soon"}, "spec.refreshBefore"),
    ("GoogleClient", {**GOOD_CLIENT, "redirectURI": "callback.example.com"}, "spec.redirectURI"),
    ("GoogleClient", {**GOOD_CLIENT, "scopes": ["business.manage"]}, "spec.scopes[0]"),
    ("GoogleClient", {**GOOD_CLIENT, "scopes": []}, "spec.scopes"),
    ("GoogleClient", {**GOOD_CLIENT, "loginHint": "nobody"}, "spec.loginHint"),
    ("GoogleClient", {**GOOD_CLIENT, "tokenSecretName": "Not_A_Name"}, "spec.tokenSecretName"),
    ("Branch", {**GOOD_BRANCH, "accountId": "accounts/123"}, "spec.accountId"),
    ("Branch", {"clientRef": {"name": "acme"}, "accountId": "123"}, "spec.locationId: Required"),
    ("Branch", {**GOOD_BRANCH, "clientRef": {}}, "spec.clientRef.name: Required value"),
    ("GoogleClient", templated({"a": "{{ refresh_token }}"}), "unknown placeholder"),
    ("GoogleClient", templated({"a": "{{ client_secret }}"}), "unknown placeholder"),
    ("GoogleClient", templated({"a": "{{ location_id }}"}), "unknown placeholder"),
    ("GoogleClient", templated({"a": "{{{ access_token }}"}), "spec.secretTemplate.data"),
    ("GoogleClient", templated({"access_token": "x"}), "cannot be overridden"),
    ("Branch", {**GOOD_BRANCH, "secretTemplate": {"data": {"location_id": "x"}}}, "overridden"),
    ("GoogleClient", templated({"a/b": "x"}), "Secret data keys"),
    ("GoogleClient", templated({"a": "x" * 4097}), "spec.secretTemplate.data.a: Too long"),
    ("GoogleClient", templated({f"k{n}": "x" for n in range(17)}), "spec.secretTemplate.data"),
    ("GoogleClient", templated({"a": "{{ expiry }}" * 9}), "more than 8 in one value"),
    (
        "GoogleClient",
        {**GOOD_CLIENT, "secretTemplate": {"metadata": {"labels": {"bad key!": "x"}}}},
        "label keys",
    ),
    (
        "GoogleClient",
        {**GOOD_CLIENT, "secretTemplate": {"metadata": {"labels": {"a": "not a value"}}}},
        "label values",
    ),
    (
        "GoogleClient",
        {**GOOD_CLIENT, "secretTemplate": {"metadata": {"annotations": {"a": "{{ expiry }}"}}}},
        "literal",
    ),
]


@pytest.mark.parametrize(("kind", "spec", "named"), BAD_OBJECTS)
def test_bad_objects_are_refused_naming_the_field(
    control_plane: ControlPlane, crds: None, namespace: str, kind: str, spec: dict, named: str
) -> None:
    result = control_plane.kubectl(
        "apply", "-f", "-", input=manifest(kind, namespace, spec), check=False
    )
    assert result.returncode != 0
    assert named in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("kind", "spec"),
    [
        ("GoogleClient", GOOD_CLIENT),
        ("Branch", GOOD_BRANCH),
        ("GoogleClient", {**GOOD_CLIENT, "secretTemplate": TEMPLATE}),
        ("Branch", {**GOOD_BRANCH, "secretTemplate": {**TEMPLATE, **BRANCH_TEMPLATE}}),
    ],
)
def test_good_objects_are_accepted_with_defaults(
    control_plane: ControlPlane, crds: None, namespace: str, kind: str, spec: dict
) -> None:
    control_plane.kubectl("apply", "-f", "-", input=manifest(kind, namespace, spec))
    stored = json.loads(
        control_plane.kubectl("get", kind.lower(), "subject", "-n", namespace, "-o", "json").stdout
    )
    assert stored["spec"].get("secretTemplate") == spec.get("secretTemplate")
    if kind == "GoogleClient":
        assert stored["spec"]["scopes"] == ["https://www.googleapis.com/auth/business.manage"]
        assert stored["spec"]["revokeOnDelete"] is False


def test_kubectl_explain_teaches_the_fields(control_plane: ControlPlane, crds: None) -> None:
    text = control_plane.kubectl("explain", "googleclients.spec.refreshBefore").stdout
    assert "a third of the token's lifetime" in text.replace("\n", " ").replace("  ", " ")
    text = control_plane.kubectl("explain", "branches.spec").stdout
    assert "accountId" in text and "locationId" in text


def test_printer_columns_and_short_names(
    control_plane: ControlPlane, crds: None, namespace: str
) -> None:
    control_plane.kubectl(
        "apply", "-f", "-", input=manifest("GoogleClient", namespace, GOOD_CLIENT)
    )
    header = control_plane.kubectl("get", "gclient", "-n", namespace).stdout.splitlines()[0]
    for column in ("ACCOUNT", "AUTHORIZED", "READY", "REASON", "EXPIRES", "AGE"):
        assert column in header
    listed = control_plane.kubectl("get", "googletokens", "-n", namespace).stdout
    assert "subject" in listed
