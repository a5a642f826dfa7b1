"""Grants shared between GoogleClients: the pure decision first, then the revokes of a deletion,
a revoke request and a consent, each with another GoogleClient keeping a grant of the pair."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fakes import LOG, T0, FakeKube, operator_with_fakes
from hypothesis import given
from hypothesis import strategies as st

from google_token_operator.commands.request_commands import Asked, revoke_at_google
from google_token_operator.consent.api import ConsentService
from google_token_operator.consent_state.contract import Outcome
from google_token_operator.day2 import Request
from google_token_operator.grant_sharing import (
    GRANT_LIMIT_NEAR,
    GrantPair,
    KeptGrant,
    holders_by_pair,
    largest_sharing,
    near_limit,
    revoke_verdict,
)
from google_token_operator.reconcile.client_pass import ClientMemory, ClientPass
from google_token_operator.reconcile.deletion import delete_client
from google_token_operator.reconcile.grant_limit import GrantLimit
from google_token_operator.runtime.context import Operator
from google_token_operator.runtime.kept_grants import listed_grants

CLIENT_ID = "cid.apps.googleusercontent.com"
PAIR = GrantPair(CLIENT_ID, "owner@example.com")


def kept(namespace: str, name: str, pair: GrantPair = PAIR) -> KeptGrant:
    return KeptGrant((namespace, name), pair)


# The pure decision ----------------------------------------------------------------------------


def test_a_grant_nobody_else_keeps_is_revoked() -> None:
    grants = [kept("team", "acme"), kept("team", "other", GrantPair(CLIENT_ID, "b@example.com"))]
    assert revoke_verdict(("team", "acme"), PAIR, grants).revoke


def test_a_grant_another_client_keeps_is_not_revoked_and_other_namespaces_are_not_named() -> None:
    grants = [kept("team", "acme"), kept("team", "sibling"), kept("rival", "secret-project")]

    verdict = revoke_verdict(("team", "acme"), PAIR, grants)

    assert not verdict.revoke
    assert "GoogleClient 'sibling' and 1 GoogleClient in another namespace keep" in verdict.message
    assert "rival" not in verdict.message and "secret-project" not in verdict.message


def test_a_token_the_client_does_not_keep_counts_its_own_kept_grant() -> None:
    """A refused or replaced consent's token: revoking it would end the grant the client keeps."""
    verdict = revoke_verdict(("team", "acme"), PAIR, [kept("team", "acme")], kept_by_holder=False)
    assert not verdict.revoke and "this GoogleClient keeps" in verdict.message


def test_an_unknown_account_or_client_id_is_never_the_reason_a_grant_dies() -> None:
    unknown_account = [kept("team", "old", GrantPair(CLIENT_ID, ""))]
    unknown_client = [kept("team", "old", GrantPair("", PAIR.account))]
    assert not revoke_verdict(("team", "acme"), PAIR, unknown_account).revoke
    assert not revoke_verdict(("team", "acme"), PAIR, unknown_client).revoke
    other_client = [kept("team", "old", GrantPair("another-client", ""))]
    assert revoke_verdict(("team", "acme"), PAIR, other_client).revoke


def test_the_sharing_counted_per_pair_and_the_clients_past_the_mark() -> None:
    grants = [kept("team", f"c{index}") for index in range(GRANT_LIMIT_NEAR + 1)]
    grants += [kept("team", "alone", GrantPair(CLIENT_ID, "b@example.com"))]
    grants += [kept("team", "unknown", GrantPair(CLIENT_ID, ""))]  # merges nothing

    holders = holders_by_pair(grants)

    assert largest_sharing(holders) == GRANT_LIMIT_NEAR + 1
    near = near_limit(holders)
    assert set(near) == {("team", f"c{index}") for index in range(GRANT_LIMIT_NEAR + 1)}
    assert set(near.values()) == {GRANT_LIMIT_NEAR + 1}
    assert near_limit(holders_by_pair(grants[1:])) == {}  # 50 is not past the mark
    assert largest_sharing({}) == 0


keys = st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["x", "y", "z"]))
pairs = st.builds(GrantPair, st.sampled_from(["", "c1", "c2"]), st.sampled_from(["", "p@q"]))


@given(st.lists(st.builds(KeptGrant, keys, pairs)), keys, pairs, st.booleans())
def test_a_revoke_goes_ahead_exactly_when_no_other_kept_grant_may_be_of_its_pair(
    grants: list[KeptGrant], holder: tuple[str, str], pair: GrantPair, kept_by_holder: bool
) -> None:
    verdict = revoke_verdict(holder, pair, grants, kept_by_holder=kept_by_holder)
    blocking = [
        grant
        for grant in grants
        if grant.pair.may_be(pair) and not (kept_by_holder and grant.holder == holder)
    ]
    assert verdict.revoke == (not blocking)
    assert verdict.revoke == (verdict.message == "")
    if not verdict.revoke:
        other_namespace = "b" if holder[0] == "a" else "a"
        assert f"{other_namespace}/" not in verdict.message


# The revokes, with fake edges -----------------------------------------------------------------


def client(kube: FakeKube, name: str, namespace: str = "team", **spec: Any) -> dict[str, Any]:
    kube.put_secret(namespace, f"{name}-oauth", {"client_id": CLIENT_ID, "client_secret": "s"})
    return kube.put_resource(
        "googleclients",
        {
            "apiVersion": "google-token-operator.dev/v1",
            "kind": "GoogleClient",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"credentialsSecretRef": {"name": f"{name}-oauth"}, **spec},
        },
    )


def private_secret(
    kube: FakeKube, name: str, owner_uid: str, account: str, namespace: str = "team"
) -> None:
    """A private Secret as the operator writes it (labels, owner), holding a grant."""
    kube.put_secret(
        namespace,
        f"{name}-google-oauth",
        {"refresh_token": f"1//{name}", "client_id": CLIENT_ID, "scopes": "openid",
         "account_email": account},
        labels={"app.kubernetes.io/managed-by": "google-token-operator",
                "google-token-operator.dev/client": name,
                "google-token-operator.dev/role": "private"},
        ownerReferences=[{"apiVersion": "google-token-operator.dev/v1", "kind": "GoogleClient",
                          "name": name, "uid": owner_uid, "controller": True}],
    )  # fmt: skip


def consented(kube: FakeKube, name: str, account: str, namespace: str = "team", **spec: Any) -> Any:
    body = client(kube, name, namespace, **spec)
    private_secret(kube, name, body["metadata"]["uid"], account, namespace)
    return body


async def test_deleting_a_client_whose_grant_another_keeps_skips_the_revoke_and_says_why() -> None:
    op, kube, google, _, events = operator_with_fakes()
    body = consented(kube, "acme", "owner@example.com", revokeOnDelete=True)
    consented(kube, "sibling", "OWNER@example.com", namespace="gto")  # same account

    await delete_client(op, kube.delete_resource("googleclients", "team", "acme"), LOG)

    assert google.revoked == []
    assert kube.plain("team", "acme-google-oauth") is None  # the local token still goes
    [(name, reason, message)] = events.messages
    assert (name, reason) == ("acme", "RevokeSkipped")
    assert "1 GoogleClient in another namespace keeps" in message and "sibling" not in message
    assert body["metadata"]["uid"] not in message


async def test_deleting_a_client_whose_pair_nobody_else_keeps_revokes_once() -> None:
    op, kube, google, _, events = operator_with_fakes()
    consented(kube, "acme", "owner@example.com", revokeOnDelete=True)
    consented(kube, "sibling", "someone-else@example.com")

    await delete_client(op, kube.delete_resource("googleclients", "team", "acme"), LOG)

    assert google.revoked == ["1//acme"]
    assert events.messages == []


async def test_forged_labelled_secrets_neither_block_nor_cause_a_revoke() -> None:
    """A tenant's Secrets with the operator's labels and a grant of the same pair: not under
    a client's private name, owned by no live client, or owned by another client's uid."""
    op, kube, google, _, _ = operator_with_fakes()
    consented(kube, "acme", "owner@example.com", revokeOnDelete=True)
    sibling = client(kube, "sibling")
    private_secret(kube, "not-a-client", "uid-nobody", "owner@example.com")
    private_secret(kube, "ghost", "uid-of-a-deleted-client", "owner@example.com")
    kube.put_secret(  # under the sibling's private name, but owned by another object's uid
        "team",
        "sibling-google-oauth",
        {"refresh_token": "1//forged", "client_id": CLIENT_ID,
         "account_email": "owner@example.com"},
        labels={"app.kubernetes.io/managed-by": "google-token-operator",
                "google-token-operator.dev/role": "private"},
        ownerReferences=[{"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "uid-x"}],
    )  # fmt: skip
    assert sibling["metadata"]["uid"] != "uid-x"

    await delete_client(op, kube.delete_resource("googleclients", "team", "acme"), LOG)
    assert google.revoked == ["1//acme"]

    # The consent API (no watch: it lists) judges them the same way.
    standby = Operator(op.settings, kube, google, op.metrics, events=op.events)
    assert [grant.holder for grant in await listed_grants(standby)] == []


async def test_a_revoke_request_on_a_shared_grant_drops_the_local_token_only() -> None:
    op, kube, google, _, events = operator_with_fakes()
    consented(kube, "acme", "owner@example.com")
    consented(kube, "sibling", "owner@example.com")
    body = kube.resource("googleclients", "team", "acme")
    body["metadata"]["annotations"] = {"google-token-operator.dev/revoke-requested-at": "v1"}
    memory = ClientMemory(status={})

    await ClientPass(op, body, LOG).run(memory)

    assert google.revoked == []
    assert kube.plain("team", "acme-google-oauth") is None
    assert kube.plain("team", "sibling-google-oauth") is not None
    assert memory.status["handledRequests"] == {"revoke": "v1"}
    [message] = [text for _, reason, text in events.messages if reason == "RevokeSkipped"]
    assert message.startswith("Revoke request v1: Did not revoke the grant at Google")
    assert "GoogleClient 'sibling' keeps" in message


async def test_a_refused_account_is_not_revoked_while_another_client_keeps_its_grant() -> None:
    """On a standby (no watch), the consent API lists the private Secrets to know."""
    op, kube, google, _, _ = operator_with_fakes()
    acme = client(kube, "acme", allowedAccounts=["boss@example.com"])
    consented(kube, "sibling", "owner@example.com")  # the account FakeGoogle answers with
    memory = ClientMemory(status={})
    await ClientPass(op, acme, LOG).run(memory)
    state = memory.status["authorization"]["url"].split("state=")[1].split("&")[0]
    events = op.events
    standby = Operator(op.settings, kube, google, op.metrics, clock=op.clock, events=events)

    answer = await ConsentService(standby).complete(state, "the-code", "")

    assert answer.outcome is Outcome.ACCOUNT_NOT_ALLOWED
    assert google.revoked == []
    assert "was not revoked at Google" in answer.message
    assert kube.plain("team", "sibling-google-oauth") is not None


def test_the_revoke_command_tells_a_skipped_revoke_from_its_events() -> None:
    asked = Asked(Request.REVOKE, "team", "acme", "v2", T0, dt.timedelta(minutes=2), "")
    older = {"reason": "RevokeSkipped", "message": "Revoke request v1: Did not revoke (old)"}
    assert revoke_at_google(asked, [older]) == "The grant was revoked at Google."
    mine = {"reason": "RevokeSkipped", "message": "Revoke request v2: Did not revoke (why)"}
    assert revoke_at_google(asked, [older, mine]) == "Did not revoke (why)"


def sharing_gauge(op: Operator) -> float | None:
    return op.metrics.registry.get_sample_value("google_token_operator_grant_sharing_max")


async def test_the_51st_client_on_one_pair_tells_each_of_them_once() -> None:
    op, kube, _, _, events = operator_with_fakes()
    for index in range(GRANT_LIMIT_NEAR):
        consented(kube, f"c{index:02d}", "owner@example.com")
    consented(kube, "elsewhere", "owner@example.com", namespace="gto")
    consented(kube, "other-account", "b@example.com")
    limit = GrantLimit(op)

    limit.count()

    assert sharing_gauge(op) == GRANT_LIMIT_NEAR + 1
    told = events.posted
    assert len(told) == GRANT_LIMIT_NEAR + 1
    assert {(warning, reason) for _, warning, reason in told} == {(True, "GrantLimitNear")}
    assert "other-account" not in {name for name, _, _ in told}
    assert "51 GoogleClients keep a grant" in events.messages[0][2]
    limit.count()
    assert len(events.posted) == GRANT_LIMIT_NEAR + 1  # told once

    gone = kube.secrets[("gto", "elsewhere-google-oauth")]["metadata"]["uid"]
    await kube.delete_secret("gto", "elsewhere-google-oauth", uid=gone)
    limit.count()
    assert sharing_gauge(op) == GRANT_LIMIT_NEAR
    consented(kube, "again", "owner@example.com")
    limit.count()
    assert len(events.posted) == 2 * (GRANT_LIMIT_NEAR + 1)  # passed the mark again
