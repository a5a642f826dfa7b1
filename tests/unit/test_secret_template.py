"""spec.secretTemplate: parsing (the pass's own check, for a CRD that is absent or old),
rendering, and the consumer Secret it shapes."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes import operator_with_fakes
from hypothesis import given
from hypothesis import strategies as st
from test_client_plan import NOW, SETTINGS, decided, gathered, plain
from test_passes import NS, authorized, run_pass

from google_token_operator import builders, client_plan, secret_template
from google_token_operator.branches import (
    ClientState,
    LocationCheck,
    branch_ready,
    parse_branch_spec,
)
from google_token_operator.clients import parse_client_spec
from google_token_operator.conditions import Reason
from google_token_operator.naming import BranchLocation, Owner
from google_token_operator.reconcile.client_pass import ClientMemory
from google_token_operator.secret_template import (
    BRANCH_PLACEHOLDERS,
    CLIENT_PLACEHOLDERS,
    STANDARD_KEYS,
    SecretTemplate,
    TemplateProblem,
    parse_secret_template,
    render,
)
from google_token_operator.tokens import AccessToken

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
ACCESS = AccessToken(
    "ya29.abc", "Bearer", ("openid", "https://x/b"), T0, T0 + dt.timedelta(hours=1)
)
BRANCH = Owner("Branch", "downtown", "team", "uid-b")
CLIENT = Owner("GoogleClient", "acme", "team", "uid-c")
REPO = Path(__file__).resolve().parents[2]


def placeholder(name: str, space: str = " ") -> str:
    return "{{" + space + name + space + "}}"


def parsed(template: Any, kind: str = "GoogleClient") -> SecretTemplate:
    result = parse_secret_template({"secretTemplate": template}, kind)
    assert isinstance(result, SecretTemplate), result
    return result


def refused(template: Any, kind: str = "GoogleClient") -> str:
    result = parse_secret_template({"secretTemplate": template}, kind)
    assert isinstance(result, TemplateProblem), result
    return result.message


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_a_branch_template_renders_every_placeholder_and_keeps_the_standard_keys() -> None:
    template = parsed(
        {
            "metadata": {"labels": {"reloader": "enabled"}, "annotations": {"team": "reviews"}},
            "data": {
                "authorization": "Bearer {{ access_token }}",
                ".env": "TOKEN={{access_token}}\nEXPIRY={{ expiry }}\n",
                "all": " ".join(map(placeholder, BRANCH_PLACEHOLDERS)),
            },
        },
        "Branch",
    )
    secret = builders.consumer_secret(
        BRANCH, "downtown-google-token", "acme", ACCESS, BranchLocation("123", "456"),
        template, "owner@example.com",
    )  # fmt: skip
    data = decoded(secret)
    assert data["authorization"] == "Bearer ya29.abc"
    assert data[".env"] == "TOKEN=ya29.abc\nEXPIRY=2026-01-01T13:00:00Z\n"
    assert data["all"] == (
        "ya29.abc 2026-01-01T13:00:00Z Bearer openid https://x/b owner@example.com 123 456 "
        "accounts/123/locations/456"
    )
    assert data["access_token"] == "ya29.abc" and "token.json" in data
    assert secret["metadata"]["labels"]["reloader"] == "enabled"
    assert secret["metadata"]["labels"]["google-token-operator.dev/role"] == "consumer"
    assert secret["metadata"]["annotations"] == {"team": "reviews"}


def test_the_operators_own_labels_win_and_the_ready_message_says_so() -> None:
    template = parsed(
        {
            "metadata": {
                "labels": {
                    "google-token-operator.dev/role": "private",
                    "app.kubernetes.io/managed-by": "me",
                    "keep": "yes",
                },
                "annotations": {"google-token-operator.dev/x": "y"},
            }
        }
    )
    assert template.labels == {"keep": "yes"} and not template.annotations
    secret = builders.consumer_secret(CLIENT, "t", "acme", ACCESS, None, template)
    labels = secret["metadata"]["labels"]
    assert labels["google-token-operator.dev/role"] == "consumer"
    assert labels["app.kubernetes.io/managed-by"] == "google-token-operator"
    assert "google-token-operator.dev/role" in template.note and "win" in template.note
    spec = dataclasses.replace(gathered().spec, secret_template=template)
    ready = decided(gathered(spec=spec)).status("", None, "", NOW)[0][1]
    assert ready.status and ready.reason == Reason.TOKEN_VALID
    assert "operator's own labels and annotations win" in ready.message


@pytest.mark.parametrize(
    ("template", "kind", "named"),
    [
        ({"data": {"a": "{{ refresh_token }}"}}, "GoogleClient", "unknown placeholder"),
        ({"data": {"a": "{{ client_secret }}"}}, "Branch", "unknown placeholder"),
        ({"data": {"a": "{{ location_id }}"}}, "GoogleClient", "unknown placeholder"),
        ({"data": {"a": "{{{ access_token }}"}}, "GoogleClient", "must open a placeholder"),
        ({"data": {"access_token": "x"}}, "GoogleClient", "cannot be overridden"),
        ({"data": {"location_name": "x"}}, "Branch", "cannot be overridden"),
        ({"data": {"token.json": "x"}}, "GoogleClient", "cannot be overridden"),
        ({"data": {"a/b": "x"}}, "GoogleClient", "not a valid Secret key"),
        ({"data": {"..a": "x"}}, "GoogleClient", "not a valid Secret key"),
        ({"data": {"a": "x" * 4097}}, "GoogleClient", "at most 4096"),
        ({"data": {f"k{n}": "x" for n in range(17)}}, "GoogleClient", "at most 16"),
        ({"data": {"a": "{{ expiry }}" * 9}}, "GoogleClient", "at most 8 placeholders"),
        ({"metadata": {"labels": {f"k{n}": "x" for n in range(33)}}}, "Branch", "at most 32"),
        ({"data": {"a": 1}}, "GoogleClient", "must be a string"),
        ({"data": ["a"]}, "GoogleClient", "must be an object"),
        ({"metadata": {"labels": {"bad key!": "x"}}}, "GoogleClient", "not a valid key"),
        ({"metadata": {"labels": {"a": "not a value"}}}, "GoogleClient", "not a valid label"),
        ({"metadata": {"labels": {"a": "x" * 64}}}, "GoogleClient", "at most 63"),
        ({"metadata": {"annotations": {"a": "{{ expiry }}"}}}, "GoogleClient", "literal"),
        ({"stringData": {}}, "GoogleClient", "is not a field"),
        ("text", "GoogleClient", "must be an object"),
    ],
)
def test_a_bad_template_is_refused_naming_the_field(template: Any, kind: str, named: str) -> None:
    message = refused(template, kind)
    assert named in message
    assert message.startswith("spec.secretTemplate")


def test_a_client_with_a_bad_template_keeps_refreshing_and_writes_no_consumer_secret() -> None:
    """The CRD absent or old: the pass refuses the template with a named reason; the old
    Secret stays as it was (no write), the private Secret and its refresh token go on."""
    for bad in ({"data": {"a": "{{ nope }}"}}, {"data": {"access_token": "Bearer x"}}):
        body = {
            "metadata": {"name": "acme", "namespace": "team", "uid": "uid-acme"},
            "spec": {"credentialsSecretRef": {"name": "acme-oauth"}, "secretTemplate": bad},
        }
        spec = parse_client_spec(body, SETTINGS)
        facts = gathered(spec=spec)
        # The refresh still happens when due (the private Secret keeps the grant going).
        assert client_plan.calls(facts, NOW + dt.timedelta(minutes=49)).refresh
        plan = decided(facts)
        assert plan.consumer is None
        ready = plan.status("", None, "", NOW)[0][1]
        assert (ready.status, ready.reason) == (False, Reason.SECRET_TEMPLATE_INVALID)
        assert "spec.secretTemplate.data" in ready.message and "keeps" in ready.message


def test_a_good_client_template_is_written_with_the_consumer_secret() -> None:
    body = {
        "metadata": {"name": "acme", "namespace": "team", "uid": "uid-acme"},
        "spec": {
            "credentialsSecretRef": {"name": "acme-oauth"},
            "secretTemplate": {"data": {"who": "{{ account_email }}: {{ token_type }}"}},
        },
    }
    plan = decided(gathered(spec=parse_client_spec(body, SETTINGS)))
    assert plain(plan.consumer)["who"] == "owner@example.com: Bearer"


def test_a_branch_with_a_bad_template_says_so_in_ready() -> None:
    body = {
        "metadata": {"name": "downtown", "namespace": "team", "uid": "u", "generation": 1},
        "spec": {
            "clientRef": {"name": "acme"},
            "accountId": "123",
            "locationId": "456",
            "secretTemplate": {"data": {"a": "{{ refresh_token }}"}},
        },
    }
    spec = parse_branch_spec(body)
    client = ClientState(exists=True, ready=True, access=ACCESS)
    check = LocationCheck(True, T0, 1, "Downtown")
    ready = branch_ready(spec, client, check, T0)
    assert (ready.status, ready.reason) == (False, Reason.SECRET_TEMPLATE_INVALID)
    assert "unknown placeholder {{ refresh_token }}" in ready.message


def test_no_placeholder_reaches_a_refresh_token_or_a_client_secret() -> None:
    """The values a template can see are the consumer Secret's standard keys and the account:
    the private record's refresh token and the credentials never reach them."""
    values = secret_template.template_values(
        builders.consumer_data(ACCESS, BranchLocation("1", "2")), "owner@example.com", "Branch"
    )
    assert set(values) == set(BRANCH_PLACEHOLDERS)
    forbidden = {"refresh_token", "client_secret", "client_id", "code", "refresh"}
    assert not forbidden & set(BRANCH_PLACEHOLDERS)
    for name in forbidden:
        assert "unknown placeholder" in refused({"data": {"a": placeholder(name)}}, "Branch")
    # The full plan: a refresh token in the record is in no templated key.
    every = {f"k{n}": placeholder(name) for n, name in enumerate(CLIENT_PLACEHOLDERS)}
    body = {
        "metadata": {"name": "acme", "namespace": "team", "uid": "uid-acme"},
        "spec": {"credentialsSecretRef": {"name": "acme-oauth"}, "secretTemplate": {"data": every}},
    }
    consumer = plain(decided(gathered(spec=parse_client_spec(body, SETTINGS))).consumer)
    assert not any("1//r" in value or "s3cret" in value for value in consumer.values())


PLACEHOLDER_TEXT = st.sampled_from(
    [*map(placeholder, BRANCH_PLACEHOLDERS), placeholder(BRANCH_PLACEHOLDERS[0], "")]
)
TEXT = st.text(st.characters(codec="utf-8", exclude_characters="{"), max_size=20)


@given(st.lists(st.one_of(PLACEHOLDER_TEXT, TEXT), max_size=8))
def test_rendering_replaces_exactly_the_placeholders(parts: list[str]) -> None:
    template = "".join(parts)
    values = {name: f"<{name}>" for name in BRANCH_PLACEHOLDERS}
    expected = "".join(
        values[part.strip("{} ")] if part.startswith("{{") else part for part in parts
    )
    assert render(template, values) == expected
    result = parse_secret_template({"secretTemplate": {"data": {"k": template}}}, "Branch")
    assert isinstance(result, SecretTemplate)


@given(st.text(max_size=40), st.sampled_from(["GoogleClient", "Branch"]))
def test_the_pass_and_the_crd_agree_on_every_data_template(text: str, kind: str) -> None:
    """The CRD's rule (its pattern, as Go's regexp reads it: no construct differs) and the
    pass accept the same values; anything either way is parsed or refused, never raises."""
    crd = "googleclients" if kind == "GoogleClient" else "branches"
    accepted = re.fullmatch(CRD_PATTERNS[crd], text) is not None
    result = parse_secret_template({"secretTemplate": {"data": {"k": text}}}, kind)
    assert isinstance(result, SecretTemplate) is accepted


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=12,
    )
)
def test_any_template_value_is_parsed_or_refused(raw: Any) -> None:
    result = parse_secret_template({"secretTemplate": raw}, "Branch")
    assert isinstance(result, SecretTemplate | TemplateProblem)
    if isinstance(result, SecretTemplate):
        assert not STANDARD_KEYS & set(result.data)
        assert all(not secret_template.is_operators_own(key) for key in result.labels)


def _crd_patterns() -> dict[str, str]:
    """The data template pattern of each CRD, as it stands in crds/."""
    patterns = {}
    for crd in ("googleclients", "branches"):
        text = (REPO / "crds" / f"{crd}.yaml").read_text()
        schema = yaml.safe_load(text)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        data = schema["properties"]["spec"]["properties"]["secretTemplate"]["properties"]["data"]
        rule = data["x-kubernetes-validations"][-1]["rule"]
        patterns[crd] = rule.split("matches(r'^", 1)[1].rsplit("$'", 1)[0]
    return patterns


CRD_PATTERNS = _crd_patterns()


def test_the_crd_patterns_are_the_passes() -> None:
    assert CRD_PATTERNS["googleclients"] == secret_template.template_pattern(CLIENT_PLACEHOLDERS)
    assert CRD_PATTERNS["branches"] == secret_template.template_pattern(BRANCH_PLACEHOLDERS)


async def test_a_pass_writes_the_template_once_and_brings_hand_edits_back() -> None:
    op, kube, google, clock, _ = operator_with_fakes()
    template = {
        "metadata": {"labels": {"reloader": "enabled"}, "annotations": {"team": "reviews"}},
        "data": {"authorization": "Bearer {{ access_token }}"},
    }
    authorized(kube, secretTemplate=template)
    status = await run_pass(op, kube)
    secret = kube.secrets[(NS, "acme-google-token")]
    uid = secret["metadata"]["uid"]
    data = kube.plain(NS, "acme-google-token") or {}
    assert data["authorization"] == f"Bearer {data['access_token']}"
    assert secret["metadata"]["labels"]["reloader"] == "enabled"
    assert secret["metadata"]["annotations"] == {"team": "reviews"}

    # Nothing changed: no write (what is compared includes the template's metadata).
    kube.writes.clear()
    clock.advance(minutes=5)
    status = await run_pass(op, kube, ClientMemory(status))
    assert kube.writes == [] and google.calls["refresh"] == 1

    # A label added by hand goes, the template's comes back; the same object throughout.
    edited = {**secret["metadata"]["labels"], "by-hand": "x"}
    del edited["reloader"]
    await kube.patch_secret(
        NS, "acme-google-token", [{"op": "add", "path": "/metadata/labels", "value": edited}]
    )
    status = await run_pass(op, kube, ClientMemory(status))
    labels = kube.secrets[(NS, "acme-google-token")]["metadata"]["labels"]
    assert labels["reloader"] == "enabled" and "by-hand" not in labels
    assert labels["google-token-operator.dev/role"] == "consumer"
    assert kube.secrets[(NS, "acme-google-token")]["metadata"]["uid"] == uid
    assert google.calls["refresh"] == 1
