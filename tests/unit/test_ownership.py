"""Roles in ownership: a Secret the operator owns is written and deleted only in its role."""

from __future__ import annotations

import datetime as dt

from fakes import T0, FakeKube

from google_token_operator.builders import consumer_secret, private_secret
from google_token_operator.consent_state import pending as consent
from google_token_operator.metrics import Metrics
from google_token_operator.naming import (
    ROLE_CONSENT,
    ROLE_CONSUMER,
    ROLE_PRIVATE,
    Owner,
    labels_for,
)
from google_token_operator.ownership import Claim, claim, reserved_name_problem
from google_token_operator.runtime.cluster import ClusterView
from google_token_operator.runtime.memory import WriteMemory
from google_token_operator.runtime.secrets import SecretWriter, Written
from google_token_operator.tokens import AccessToken, TokenRecord
from google_token_operator.views import SecretMeta, secret_meta

NS = "team"
OWNER = Owner("GoogleClient", "acme", NS, "uid-acme")
ACCESS = AccessToken("ya29.new", "Bearer", ("openid",), T0, T0 + dt.timedelta(hours=1))
RECORD = TokenRecord("1//r", "cid", ("openid",), "owner@example.com", ACCESS)


def owned(role: str | None) -> SecretMeta:
    labels = labels_for("acme", role=role or "")
    return SecretMeta("uid-secret", "7", labels, (OWNER.uid,))


def test_an_owned_secret_is_ours_only_in_its_own_role() -> None:
    assert claim(owned(ROLE_PRIVATE), OWNER, ROLE_PRIVATE, "acme-google-oauth").claim is Claim.OURS
    assert claim(owned(ROLE_CONSUMER), OWNER, ROLE_CONSUMER, "x").claim is Claim.OURS

    as_consumer = claim(owned(ROLE_PRIVATE), OWNER, ROLE_CONSUMER, "acme-google-oauth")
    assert as_consumer.claim is Claim.FOREIGN
    assert "private Secret (it holds the refresh token)" in as_consumer.why
    as_private = claim(owned(ROLE_CONSUMER), OWNER, ROLE_PRIVATE, "acme-google-oauth")
    assert as_private.claim is Claim.FOREIGN
    assert "consumer Secret" in as_private.why
    consent = claim(owned("consent"), OWNER, ROLE_CONSUMER, "x")
    assert consent.claim is Claim.FOREIGN and "'consent' Secret" in consent.why


def test_an_unlabelled_role_is_private_under_the_private_name_and_consumer_elsewhere() -> None:
    unlabelled = owned(None)
    assert claim(unlabelled, OWNER, ROLE_CONSUMER, "acme-google-oauth").claim is Claim.FOREIGN
    assert claim(unlabelled, OWNER, ROLE_PRIVATE, "acme-google-oauth").claim is Claim.OURS
    assert claim(unlabelled, OWNER, ROLE_CONSUMER, "acme-google-token").claim is Claim.OURS
    branch = Owner("Branch", "acme", NS, OWNER.uid)  # a Branch owns no private Secret
    assert claim(unlabelled, branch, ROLE_CONSUMER, "acme-google-oauth").claim is Claim.OURS


def test_only_the_private_name_is_reserved() -> None:
    problem = reserved_name_problem("acme-google-oauth", "acme")
    assert "spec.tokenSecretName" in problem and "refresh token" in problem
    assert reserved_name_problem("acme-google-token", "acme") == ""
    assert reserved_name_problem("other-google-oauth", "acme") == ""


async def test_the_writer_never_writes_reads_or_deletes_a_private_secret_as_a_consumer() -> None:
    kube = FakeKube()
    writer = SecretWriter(kube, None, Metrics(), WriteMemory())
    assert (await writer.ensure(private_secret(OWNER, RECORD), OWNER, ROLE_PRIVATE)).outcome is (
        Written.WROTE
    )
    private = kube.secrets[(NS, "acme-google-oauth")]
    before = (dict(private["data"]), private["metadata"]["resourceVersion"])

    aimed = consumer_secret(OWNER, "acme-google-oauth", "acme", ACCESS)
    written = await writer.ensure(aimed, OWNER, ROLE_CONSUMER)
    assert written.outcome is Written.CONFLICT and "private Secret" in written.why
    assert not await writer.delete_owned(NS, "acme-google-oauth", OWNER, ROLE_CONSUMER)
    assert await writer.read_owned((NS, "acme-google-oauth"), OWNER, ROLE_CONSUMER) is None

    private = kube.secrets[(NS, "acme-google-oauth")]
    assert (private["data"], private["metadata"]["resourceVersion"]) == before
    assert await writer.read_owned((NS, "acme-google-oauth"), OWNER, ROLE_PRIVATE) is not None


async def test_a_write_not_yet_watched_keeps_its_role() -> None:
    """The watch lags behind this process's own create: what it remembers of the write
    (not the role a later caller asks for) decides."""
    kube = FakeKube()  # its changes never reach the view below: a watch that lags
    memory = WriteMemory()
    view = ClusterView(kube, [], "gto", memory)
    writer = SecretWriter(kube, view, Metrics(), memory)
    await writer.ensure(private_secret(OWNER, RECORD), OWNER, ROLE_PRIVATE)
    before = kube.plain(NS, "acme-google-oauth")

    aimed = consumer_secret(OWNER, "acme-google-oauth", "acme", ACCESS)
    assert (await writer.ensure(aimed, OWNER, ROLE_CONSUMER)).outcome is Written.CONFLICT
    assert not await writer.delete_owned(NS, "acme-google-oauth", OWNER, ROLE_CONSUMER)
    assert kube.plain(NS, "acme-google-oauth") == before
    assert await writer.delete_owned(NS, "acme-google-oauth", OWNER, ROLE_PRIVATE)
    assert kube.plain(NS, "acme-google-oauth") is None


def test_a_consent_state_is_ours_only_when_its_labels_name_the_very_client() -> None:
    """A consent Secret lives in the operator's namespace, with no ownerReference: its
    labels name its GoogleClient, uid included, and only they make it this client's."""
    fresh = consent.Fresh("state", "verifier")
    mine = consent.consent_secret("gto", fresh.state, pending_for(OWNER.uid))
    theirs = consent.consent_secret("gto", fresh.state, pending_for("uid-of-a-recreated-acme"))

    name = consent.consent_secret_name(fresh.state)
    assert claim(secret_meta(mine), OWNER, ROLE_CONSENT, name).claim is Claim.OURS
    other = claim(secret_meta(theirs), OWNER, ROLE_CONSENT, name)
    assert other.claim is Claim.FOREIGN and "not a consent state of this" in other.why
    # The consent role is never a way into another role's Secret, nor theirs into it.
    assert claim(owned(ROLE_PRIVATE), OWNER, ROLE_CONSENT, name).claim is Claim.FOREIGN
    assert claim(secret_meta(mine), OWNER, ROLE_CONSUMER, name).claim is Claim.FOREIGN
    unmanaged = SecretMeta("uid-x", "1", {}, ())
    assert claim(unmanaged, OWNER, ROLE_CONSENT, name).claim is Claim.FOREIGN


def pending_for(uid: str) -> consent.PendingConsent:
    return consent.PendingConsent(
        "hash", NS, "acme", uid, "verifier", "https://cb", ("openid",), "fp", T0
    )
