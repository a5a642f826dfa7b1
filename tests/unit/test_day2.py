"""Day-2 requests by annotation: which are open, how they are acknowledged, what they make a
pass decide (pure: no cluster, no network)."""

import dataclasses
import datetime as dt

from test_clients import T0, access, observe, record

from google_token_operator import clients, day2
from google_token_operator.clients import ActionKind, Reason
from google_token_operator.consent_state import pending
from google_token_operator.day2 import Request

REFRESH = "google-token-operator.dev/refresh-requested-at"
REAUTHORIZE = "google-token-operator.dev/reauthorize-requested-at"
REVOKE = "google-token-operator.dev/revoke-requested-at"


def test_the_annotation_names_are_the_contract():
    assert {kind.annotation for kind in Request} == {REFRESH, REAUTHORIZE, REVOKE}
    assert {REFRESH, REAUTHORIZE, REVOKE} == day2.ANNOTATIONS


def test_a_request_is_open_until_its_value_is_acknowledged():
    annotations = {REFRESH: "t1", REVOKE: "t2", "other/annotation": "x"}
    assert day2.open_requests(annotations, None) == {
        Request.REFRESH: "t1",
        Request.REVOKE: "t2",
    }
    assert day2.open_requests(annotations, {"refresh": "t1"}) == {Request.REVOKE: "t2"}
    # The same value again is nothing new; a new value is a new request.
    assert day2.open_requests({REFRESH: "t1"}, {"refresh": "t1"}) == {}
    assert day2.open_requests({REFRESH: "t3"}, {"refresh": "t1"}) == {Request.REFRESH: "t3"}
    # An empty value asks nothing; a handledRequests written by hand as garbage is no ack.
    assert day2.open_requests({REFRESH: ""}, None) == {}
    assert day2.open_requests({REFRESH: "t1"}, "garbage") == {Request.REFRESH: "t1"}


def test_a_long_value_is_acknowledged_by_its_digest():
    long = "x" * 10_000
    ack = day2.ack_of(long)
    assert ack.startswith("sha256:") and len(ack) < 100
    assert day2.open_requests({REFRESH: long}, {"refresh": ack}) == {}
    assert day2.ack_of("2026-11-26T23:00:00Z") == "2026-11-26T23:00:00Z"


def test_acknowledging_keeps_earlier_acks_and_adds_only_what_was_handled():
    opened = {Request.REFRESH: "t2", Request.REVOKE: "t3"}
    handled = {"refresh": "t1", "reauthorize": "r1", "bogus": "x", "revoke": 7}
    assert day2.acknowledged(handled, opened, frozenset({Request.REFRESH})) == {
        "refresh": "t2",
        "reauthorize": "r1",
    }
    assert day2.acknowledged(None, {}, frozenset()) is None


def test_a_requested_refresh_waits_a_minute_after_the_last_token_and_the_last_request():
    issued = T0
    assert day2.requested_refresh_at(None, None) is None
    assert day2.requested_refresh_at(issued, None) == T0 + dt.timedelta(seconds=60)
    later = T0 + dt.timedelta(seconds=30)
    assert day2.requested_refresh_at(issued, later) == later + dt.timedelta(seconds=60)


def with_requests(observation, *kinds, refresh_at=None):
    return dataclasses.replace(
        observation, requests=frozenset(kinds), requested_refresh_at=refresh_at
    )


def test_a_refresh_request_refreshes_a_fresh_token_once_the_minute_is_over():
    fresh = observe(record(token=access()))
    assert clients.next_action(fresh, T0 + dt.timedelta(minutes=5)).kind is ActionKind.WAIT
    asked = with_requests(fresh, Request.REFRESH, refresh_at=T0 + dt.timedelta(seconds=60))
    early = clients.next_action(asked, T0 + dt.timedelta(seconds=20))
    assert early.kind is ActionKind.WAIT
    assert early.until == T0 + dt.timedelta(seconds=60)
    assert clients.next_action(asked, T0 + dt.timedelta(seconds=60)).kind is ActionKind.REFRESH


def test_a_refresh_request_does_not_jump_the_failure_backoff():
    failing = observe(
        record(token=access()),
        failure=clients.FailureState(attempts=2, retry_at=T0 + dt.timedelta(minutes=3)),
    )
    asked = with_requests(failing, Request.REFRESH, refresh_at=T0)
    action = clients.next_action(asked, T0 + dt.timedelta(minutes=1))
    assert action.kind is ActionKind.WAIT
    assert action.until == T0 + dt.timedelta(minutes=3)


def test_which_requests_a_pass_handled():
    asked = with_requests(
        observe(record(token=access())), Request.REFRESH, Request.REAUTHORIZE, Request.REVOKE
    )
    wait = clients.Action(ActionKind.WAIT, until=T0)
    consent = clients.Action(ActionKind.CONSENT, reason=Reason.CONSENT_REQUIRED)
    handled = clients.handled_requests
    assert handled(asked, wait, refreshed=False, revoked=False, reconsented=False) == set()
    assert handled(asked, wait, refreshed=True, revoked=False, reconsented=False) == {
        Request.REFRESH
    }
    # Nothing to refresh with: the refresh request is answered at once (conditions say why).
    assert handled(asked, consent, refreshed=False, revoked=True, reconsented=False) == {
        Request.REFRESH,
        Request.REVOKE,
    }
    assert handled(asked, wait, refreshed=False, revoked=False, reconsented=True) == {
        Request.REAUTHORIZE
    }
    # Only open requests are acknowledged.
    assert handled(observe(), consent, refreshed=True, revoked=True, reconsented=True) == set()


def test_a_revoke_leaves_no_token_and_a_consent_with_its_own_reason():
    revoked = clients.after_revoke(observe(record(token=access())))
    assert revoked.record is None
    action = clients.next_action(revoked, T0)
    assert action.kind is ActionKind.CONSENT
    assert action.reason == Reason.REVOKED_ON_REQUEST
    assert clients.tokens_withdrawn(action)
    authorized, ready = clients.desired_conditions(revoked, action, T0)
    assert (authorized.status, authorized.reason) == (False, Reason.REVOKED_ON_REQUEST)
    assert REVOKE in authorized.message and "status.authorization.url" in authorized.message
    assert ready.status is False
    # It stays until a new consent: a pass after a restart says the same.
    again = observe(previous=Reason.REVOKED_ON_REQUEST)
    assert clients.next_action(again, T0).reason == Reason.REVOKED_ON_REQUEST
    # Google revoking (invalid_grant) is not a revoke on request: the last token stays.
    google_revoked = clients.Action(ActionKind.CONSENT, reason=Reason.AUTHORIZATION_REVOKED)
    assert not clients.tokens_withdrawn(google_revoked)


def test_a_pending_reconsent_is_said_in_the_authorized_condition():
    observation = with_requests(observe(record(token=access())), Request.REAUTHORIZE)
    action = clients.next_action(observation, T0)
    authorized, _ = clients.desired_conditions(observation, action, T0)
    assert authorized.status is True
    assert "new consent was requested" in authorized.message


def test_a_new_reconsent_value_asks_for_a_new_consent_url():
    base = pending.consent_fingerprint("cid", "https://cb", ("a",))
    assert pending.consent_fingerprint("cid", "https://cb", ("a",), "") == base
    first = pending.consent_fingerprint("cid", "https://cb", ("a",), "r1")
    assert first != base
    assert first != pending.consent_fingerprint("cid", "https://cb", ("a",), "r2")


def test_which_replaced_grant_is_revoked_at_google():
    old = record("1//old")
    same_account = record("1//new")
    other_account = dataclasses.replace(record("1//new"), account_email="new@example.com")
    other_client = dataclasses.replace(record("1//new"), client_id="other-client")
    retire = clients.grant_to_retire
    assert retire(None, same_account) == ""
    assert retire(old, old) == ""
    # Same account and client: Google revokes per account and client, the new grant with it.
    assert retire(old, same_account) == ""
    assert retire(old, other_account) == "1//old"
    assert retire(old, other_client) == "1//old"
    # An account not known: it might be the same one, so nothing is revoked.
    assert retire(dataclasses.replace(old, account_email=""), other_account) == ""
    assert retire(record(""), other_account) == ""
