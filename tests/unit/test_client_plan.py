"""The decide phase of a GoogleClient pass over plain data (client_plan): which Google calls,
then what to write, with the clock and the randomness passed in."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from typing import Any

from google_token_operator import client_plan
from google_token_operator.client_plan import Gathered
from google_token_operator.clients import parse_client_spec
from google_token_operator.conditions import READY, Reason
from google_token_operator.consent_state import pending as consent
from google_token_operator.day2 import Request
from google_token_operator.google_types import ClientCredentials
from google_token_operator.naming import ROLE_CONSENT, ROLE_CONSUMER, ROLE_LABEL
from google_token_operator.settings import Settings
from google_token_operator.tokens import AccessToken, TokenRecord

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
SETTINGS = Settings(operator_namespace="gto")
FRESH = consent.Fresh("the-state", "the-verifier-" * 4)
SPEC = parse_client_spec(
    {
        "metadata": {"name": "acme", "namespace": "team", "uid": "uid-acme", "generation": 1},
        "spec": {"credentialsSecretRef": {"name": "acme-oauth"}},
    },
    SETTINGS,
)


def record(expires_in: dt.timedelta | None) -> TokenRecord:
    access = None
    if expires_in is not None:
        access = AccessToken("ya29.a", "Bearer", ("openid",), NOW - dt.timedelta(minutes=5),
                             NOW + expires_in)  # fmt: skip
    return TokenRecord("1//r", "cid", ("openid",), "owner@example.com", access)


def gathered(**changes: Any) -> Gathered:
    held = record(dt.timedelta(minutes=50))
    base = Gathered(
        spec=SPEC,
        last_status={},
        annotations={},
        credentials=ClientCredentials("cid", "s3cret"),
        credentials_version="1",
        stored=held,
        record=held,
        private_conflict="",
        consumer_conflict="",
        consent_state=consent.MISSING,
    )
    return dataclasses.replace(base, **changes)


def decided(facts: Gathered, now: dt.datetime = NOW) -> client_plan.ClientPlan:
    """The plan when the Google calls answered nothing new (none made, or a revoke)."""
    done = client_plan.calls(facts, now)
    return client_plan.plan(facts, done, done.observation, SETTINGS, now, FRESH)


def plain(secret: dict[str, Any] | None) -> dict[str, str]:
    assert secret is not None
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_a_fresh_token_calls_nobody_and_serves_what_is_stored() -> None:
    facts = gathered()
    assert client_plan.calls(facts, NOW) == client_plan.Calls(
        client_plan.observe(facts), revoke=False, refresh=False
    )
    plan = decided(facts)

    assert plan.private is None  # the private Secret already holds this record
    served = plain(plan.consumer)  # written only if it differs (the Secret writer)
    assert served["access_token"] == "ya29.a" and "refresh_token" not in served
    assert plan.consumer is not None
    assert plan.consumer["metadata"]["labels"][ROLE_LABEL] == ROLE_CONSUMER
    assert not plan.withdrawn and not plan.delete_consumer
    assert plan.consent_plan is None and plan.retire_consent == ""
    conditions, fields = plan.status("", None, "", NOW)
    assert [(c.type, c.status, c.reason) for c in conditions if c.type == READY] == [
        (READY, True, Reason.TOKEN_VALID)
    ]
    assert fields["tokenSecretName"] == "acme-google-token"
    # Next look: the refresh, due before the token runs out.
    assert NOW < plan.next_pass(NOW, None, "", None) < NOW + dt.timedelta(minutes=50)


def test_a_token_near_expiry_asks_google_once_then_writes_the_new_one_everywhere() -> None:
    facts = gathered(record=record(dt.timedelta(minutes=2)), stored=record(dt.timedelta(minutes=2)))
    done = client_plan.calls(facts, NOW)
    assert done.refresh and not done.revoke

    new = AccessToken("ya29.b", "Bearer", ("openid",), NOW, NOW + dt.timedelta(hours=1))
    answered = done.observation.with_record(dataclasses.replace(record(None), access=new))
    plan = client_plan.plan(facts, done, answered, SETTINGS, NOW, FRESH)

    assert plain(plan.private)["access_token"] == "ya29.b"
    assert plain(plan.private)["refresh_token"] == "1//r"
    assert plain(plan.consumer)["access_token"] == "ya29.b"
    assert "refresh_token" not in plain(plan.consumer)
    assert plan.refreshed


def test_a_revoke_request_revokes_and_withdraws_every_token() -> None:
    facts = gathered(annotations={Request.REVOKE.annotation: "now"})
    done = client_plan.calls(facts, NOW)
    assert done.revoke and not done.refresh
    plan = decided(facts)

    assert plan.private is None and plan.consumer is None
    assert plan.withdrawn and plan.delete_consumer
    _, fields = plan.status("", None, "", NOW)
    assert fields["tokenSecretName"] is None
    assert fields["handledRequests"] == {"revoke": "now"}


def test_a_private_name_taken_by_someone_else_revokes_nothing_and_writes_no_token() -> None:
    taken = "Secret 'acme-google-oauth' cannot be used: it is someone else's"
    facts = gathered(
        private_conflict=taken, record=None, stored=None,
        annotations={Request.REVOKE.annotation: "now"},
    )  # fmt: skip
    done = client_plan.calls(facts, NOW)
    assert not done.revoke and not done.refresh
    plan = decided(facts)
    assert plan.private is None and plan.consumer is None


def test_a_consumer_name_taken_is_never_written_nor_deleted_and_ready_says_why() -> None:
    taken = "Secret 'acme-google-token' cannot be used: it is someone else's"
    plan = decided(gathered(consumer_conflict=taken))
    assert plan.consumer is None and not plan.delete_consumer

    conditions, fields = plan.status(taken, None, "", NOW)
    ready = next(c for c in conditions if c.type == READY)
    assert (ready.status, ready.reason, ready.message) == (False, Reason.SECRET_CONFLICT, taken)
    assert fields["tokenSecretName"] is None


def test_without_a_grant_one_consent_url_is_minted_from_the_drawn_state() -> None:
    plan = decided(gathered(record=None, stored=None))

    assert plan.consent_plan is not None and plan.consent_plan.write is not None
    published = plan.consent_plan.published
    assert "state=the-state" in published.url
    assert published.secret_name == consent.consent_secret_name(FRESH.state)
    labels = plan.consent_plan.write["metadata"]["labels"]
    assert labels[ROLE_LABEL] == ROLE_CONSENT
    assert consent.is_state_of(labels, "team", "acme", "uid-acme")
    _, fields = plan.status("", published, "", NOW)
    assert fields["authorization"]["stateSecretName"] == published.secret_name
    assert plan.next_pass(NOW, published, "", None) <= published.expires_at
    # Its namespace missing: no URL, and a look again soon (nothing else would wake it).
    assert plan.next_pass(NOW, None, "no namespace", None) == NOW + dt.timedelta(seconds=15)


def test_a_published_url_is_retired_once_consent_is_no_longer_needed() -> None:
    published = consent.PublishedConsent("https://u", NOW + dt.timedelta(minutes=5), "f", "gto-x")
    plan = decided(gathered(last_status={"authorization": published.to_status()}))
    assert plan.consent_plan is None
    assert plan.retire_consent == "gto-x"


def test_a_renamed_token_secret_deletes_the_old_consumer_name_from_status() -> None:
    plan = decided(gathered(last_status={"tokenSecretName": "old-name"}))
    assert plan.old_consumer == "old-name"
    assert (
        decided(gathered(last_status={"tokenSecretName": "acme-google-token"})).old_consumer == ""
    )
