"""Google's grant semantics as pure decisions, with the clock passed in: scopes a person left
unticked or removed, Workspace re-authentication, time-limited grants and the 7-day end of an
app in Testing. No cluster, no network."""

import dataclasses
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_clients import T0, observe, record

from google_token_operator import blockers, clients, grant_checks
from google_token_operator.clients import ActionKind, Reason, RefreshOutcome
from google_token_operator.commands import detail, waiting
from google_token_operator.commands.status_command import client_row
from google_token_operator.google_types import (
    MAX_GRANT_LIFETIME,
    ErrorKind,
    GoogleError,
    error_subtype,
    grant_lifetime_from_response,
)
from google_token_operator.tokens import AccessToken, record_from_data, record_to_data

BUSINESS = "https://www.googleapis.com/auth/business.manage"
EMAIL = "https://www.googleapis.com/auth/userinfo.email"
DAY = dt.timedelta(days=1)


def token(scopes: tuple[str, ...], issued: dt.datetime = T0) -> AccessToken:
    return AccessToken("ya29.new", "Bearer", scopes, issued, issued + dt.timedelta(hours=1))


def invalid_grant(subtype: str = "") -> GoogleError:
    return GoogleError(ErrorKind.INVALID_GRANT, 400, "invalid_grant", "", subtype=subtype)


def granted(
    scopes: tuple[str, ...] = (BUSINESS,), consented_at: dt.datetime = T0, **fields: object
) -> clients.ClientObservation:
    base = dataclasses.replace(
        record(token=token(scopes)), scopes=scopes, consented_at=consented_at, **fields
    )
    return observe(base, scopes=[BUSINESS, "openid", "email"])


# Scopes


def test_missing_scopes_are_the_requested_ones_not_granted_in_request_order():
    requested = ["openid", "email", BUSINESS, "https://example.test/b"]
    assert grant_checks.missing_scopes(requested, ["openid", EMAIL]) == (
        BUSINESS,
        "https://example.test/b",
    )
    # Google answers email/profile under their long names: that is no missing scope.
    assert (
        grant_checks.missing_scopes(
            requested, ["openid", EMAIL, BUSINESS, "https://example.test/b"]
        )
        == ()
    )


def test_the_message_names_the_permission_in_words_and_asks_to_tick_it():
    message = grant_checks.scopes_not_granted_message((BUSINESS,))
    assert "business listings" in message and BUSINESS in message
    assert "tick every permission" in message


@given(st.lists(st.text(max_size=600), max_size=40))
def test_the_message_is_bounded_and_printable_whatever_the_scopes(scopes):
    message = grant_checks.scopes_not_granted_message(scopes)
    assert message.isprintable() and len(message) < 20 * 220 + 400


def test_a_refresh_that_lost_a_scope_keeps_the_refresh_token_and_serves_nothing_new():
    before = granted()
    after = clients.after_refresh(
        before, RefreshOutcome(access=token(("openid", EMAIL), T0 + DAY)), T0 + DAY
    )
    assert after.record is not None and before.record is not None
    assert after.record.refresh_token == before.record.refresh_token
    assert after.record.access == before.record.access
    assert after.record.missing_scopes == (BUSINESS,)
    action = clients.next_action(after, T0 + DAY)
    assert (action.kind, action.reason) == (ActionKind.CONSENT, Reason.SCOPES_NOT_GRANTED)
    authorized, _ = clients.desired_conditions(after, action, T0 + DAY)
    assert (authorized.status, authorized.reason) == (False, Reason.SCOPES_NOT_GRANTED)
    assert "business listings" in authorized.message
    # It stays so, with no call to Google, until a new consent replaces the record.
    assert clients.next_action(after, T0 + 2 * DAY).kind is ActionKind.CONSENT


def test_a_consent_that_lacked_a_scope_is_named_from_status_within_the_spec():
    observation = dataclasses.replace(
        observe(None, previous=Reason.SCOPES_NOT_GRANTED), consent_missing_scopes=(BUSINESS,)
    )
    action = clients.next_action(observation, T0)
    assert (action.kind, action.reason) == (ActionKind.CONSENT, Reason.SCOPES_NOT_GRANTED)
    authorized, ready = clients.desired_conditions(observation, action, T0)
    assert BUSINESS in authorized.message and "revoked" in authorized.message
    assert ready.reason == Reason.SCOPES_NOT_GRANTED


def test_status_names_missing_scopes_only_as_clean_bounded_strings():
    status = {
        "lastConsentFailure": {
            "reason": Reason.SCOPES_NOT_GRANTED,
            "time": "2026-01-01T12:00:00Z",
            "missingScopes": [BUSINESS, 7, "x" * 600, "bad\nscope", *["s"] * 80],
        }
    }
    failure = blockers.consent_failure_of(status)
    assert failure is not None
    assert failure.missing_scopes[0] == BUSINESS
    assert all(isinstance(s, str) and s.isprintable() for s in failure.missing_scopes)
    assert len(failure.missing_scopes) <= blockers.MAX_MISSING_SCOPES


# Re-authentication


@pytest.mark.parametrize("subtype", ["invalid_rapt", "rapt_required"])
def test_reauthentication_is_told_apart_with_advice_and_no_more_calls(subtype):
    after = clients.after_refresh(granted(), RefreshOutcome(error=invalid_grant(subtype)), T0 + DAY)
    assert after.record is not None and after.record.refresh_token  # kept
    action = clients.next_action(after, T0 + DAY)
    assert (action.kind, action.reason) == (ActionKind.CONSENT, Reason.REAUTHENTICATION_REQUIRED)
    authorized, _ = clients.desired_conditions(after, action, T0 + DAY)
    assert "cloud-platform" in authorized.message and "trusted" in authorized.message
    assert "status.authorization.url" in authorized.message
    # No retry storm: whatever the time, no refresh until a new consent.
    for hours in (1, 5, 60, 600):
        assert clients.next_action(after, T0 + dt.timedelta(hours=hours)).kind is not (
            ActionKind.REFRESH
        )


def test_other_invalid_grant_keeps_its_subtype_cleaned_and_bounded():
    hostile = "weird\x1b[31m" + "y" * 400
    subtype = error_subtype({"error_subtype": hostile})
    assert subtype.isprintable() and len(subtype) <= 60
    after = clients.after_refresh(granted(), RefreshOutcome(error=invalid_grant(subtype)), T0 + DAY)
    action = clients.next_action(after, T0 + DAY)
    assert action.reason == Reason.AUTHORIZATION_REVOKED
    authorized, _ = clients.desired_conditions(after, action, T0 + DAY)
    assert "invalid_grant (weird" in authorized.message
    assert "\x1b" not in authorized.message
    # The note survives in status.lastFailure and comes back from it.
    status = clients.desired_status(after, action, None)
    reread = clients.failure_from_status(status)
    assert reread.last_error == after.failure.last_error


# Testing publishing status


@pytest.mark.parametrize(
    ("days", "suspected"),
    [(6.4, False), (6.5, True), (7, True), (7.5, True), (7.6, False), (1, False)],
)
def test_testing_status_is_suspected_from_6_5_to_7_5_days_after_consent(days, suspected):
    now = T0 + dt.timedelta(days=days)
    assert grant_checks.testing_status_suspected(T0, now) is suspected
    after = clients.after_refresh(granted(), RefreshOutcome(error=invalid_grant()), now)
    assert (grant_checks.TESTING_HINT in after.failure.last_error) is suspected


def test_without_a_known_consent_time_nothing_is_suspected():
    assert not grant_checks.testing_status_suspected(None, T0 + dt.timedelta(days=7))


# Time-limited grants


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (86400, DAY),
        ("120", dt.timedelta(seconds=120)),
        (-5, dt.timedelta(0)),
        (10**30, MAX_GRANT_LIFETIME),
        ("9" * 5000, None),
        (True, None),
        ("soon", None),
        (None, None),
        (1.5, None),
    ],
)
def test_grant_lifetime_is_read_and_clamped(value, expected):
    assert grant_lifetime_from_response({"refresh_token_expires_in": value}) == expected


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)


@given(JSON, JSON)
def test_any_answer_gives_a_bounded_lifetime_or_none_and_a_clean_subtype(lifetime, subtype):
    read = grant_lifetime_from_response({"refresh_token_expires_in": lifetime})
    assert read is None or dt.timedelta(0) <= read <= MAX_GRANT_LIFETIME
    cleaned = error_subtype({"error_subtype": subtype})
    assert len(cleaned) <= 60 and (cleaned == "" or cleaned.isprintable())


def test_a_time_limited_grant_shows_in_status_warns_a_day_before_and_ends_without_calls():
    ends = T0 + DAY
    observation = granted(grant_expires_at=ends)
    assert (
        clients.desired_status(observation, clients.next_action(observation, T0), None)[
            "grantExpiresAt"
        ]
        == "2026-01-02T12:00:00Z"
    )
    # Far from the end: no warning; within 24 h: the Ready message warns.
    early = granted(grant_expires_at=T0 + 3 * DAY)
    _, ready = clients.desired_conditions(early, clients.next_action(early, T0), T0)
    assert "time-limited" not in ready.message
    _, ready = clients.desired_conditions(observation, clients.next_action(observation, T0), T0)
    assert ready.status and "time-limited access the person granted ends at" in ready.message
    # A pass wakes at the end at the latest, and then asks Google nothing.
    late = T0 + dt.timedelta(minutes=59)
    short = granted(grant_expires_at=T0 + dt.timedelta(minutes=2))
    wait = clients.next_action(short, T0)
    assert wait.kind is ActionKind.WAIT and wait.until == T0 + dt.timedelta(minutes=2)
    action = clients.next_action(short, late)
    assert (action.kind, action.reason) == (ActionKind.CONSENT, Reason.AUTHORIZATION_REVOKED)
    authorized, _ = clients.desired_conditions(short, action, late)
    assert "time-limited access the person granted ended" in authorized.message


def test_a_refresh_may_say_how_long_the_grant_has_left():
    after = clients.after_refresh(
        granted(),
        RefreshOutcome(access=token((BUSINESS,), T0 + DAY), grant_lifetime=dt.timedelta(hours=2)),
        T0 + DAY,
    )
    assert after.record is not None
    assert after.record.grant_expires_at == T0 + DAY + dt.timedelta(hours=2)
    assert after.record.consented_at == T0


def test_a_grant_without_end_has_no_grant_expiry_in_status():
    observation = granted()
    status = clients.desired_status(observation, clients.next_action(observation, T0), None)
    assert status["grantExpiresAt"] is None


def test_the_grant_facts_survive_the_private_secret():
    kept = dataclasses.replace(
        record(token=token((BUSINESS,))),
        scopes=(BUSINESS,),
        consented_at=T0,
        grant_expires_at=T0 + DAY,
        missing_scopes=(BUSINESS,),
        reauthentication_required=True,
    )
    assert record_from_data(record_to_data(kept)) == kept
    plain = record(token=token(("scope",)))
    assert set(record_to_data(plain)) == {
        "refresh_token",
        "client_id",
        "scopes",
        "account_email",
        "access_token",
        "token_type",
        "issued_at",
        "expiry",
    }


def test_unreadable_grant_times_count_as_unknown():
    data = record_to_data(dataclasses.replace(record(), consented_at=T0))
    data["consented_at"] = "bm90IGEgdGltZQ=="  # "not a time"
    reread = record_from_data(data)
    assert reread is not None and reread.consented_at is None


# The command line


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        (Reason.SCOPES_NOT_GRANTED, grant_checks.scopes_not_granted_message((BUSINESS,))),
        (Reason.REAUTHENTICATION_REQUIRED, grant_checks.REAUTHENTICATION_ADVICE),
    ],
)
def test_status_and_status_name_show_the_new_reasons_as_consent_blockers(reason, message):
    body = {
        "metadata": {"name": "acme", "namespace": "reviews"},
        "spec": {"credentialsSecretRef": {"name": "acme-oauth"}},
        "status": {
            "conditions": [
                {"type": "Authorized", "status": "False", "reason": reason, "message": message},
                {"type": "Ready", "status": "False", "reason": reason, "message": message},
            ],
            "grantExpiresAt": "2026-01-02T12:00:00Z",
            "authorization": {"url": "https://accounts.example/auth?state=s"},
        },
    }
    assert blockers.blocker_of(body["status"]).kind is blockers.Kind.CONSENT
    row = client_row(body, T0)
    assert (row.reason, row.message) == (reason, message)
    text = "\n".join(detail.render(detail.describe(body, {}, [], [], T0), T0))
    assert f"ready:          False {reason}" in text
    assert "grant ends at:  2026-01-02T12:00:00Z (time-limited access)" in text


def test_a_waiting_command_names_the_scopes_a_consent_did_not_grant():
    failure = blockers.ConsentFailure(Reason.SCOPES_NOT_GRANTED, T0, (BUSINESS,))
    line = waiting.consent_failure_line("reviews/acme", failure)
    assert "(ScopesNotGranted)" in line and "tick every permission" in line
    assert f"(not granted: {BUSINESS})" in line


def test_the_subtype_shows_in_the_error_as_logged():
    error = GoogleError(
        ErrorKind.INVALID_GRANT, 400, "invalid_grant", "reauth", subtype="invalid_rapt"
    )
    assert str(error) == "HTTP 400 invalid_grant (invalid_rapt): reauth"
    assert error.needs_reauthentication
