"""The consent API and the passes over fakes: a consent with a permission left unticked stores
nothing and revokes the partial grant; a time-limited grant is shown, then ends without a call
to Google."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fakes import FakeKube, operator_with_fakes
from test_passes import CLIENT_ID, NS, client_body, condition, run_pass

from google_token_operator.conditions import AUTHORIZED, READY, Reason, find_condition
from google_token_operator.consent.api import ConsentService
from google_token_operator.consent.callback.pages import outcome_page
from google_token_operator.consent_state.contract import Outcome
from google_token_operator.reconcile.client_pass import ClientMemory

BUSINESS = "https://www.googleapis.com/auth/business.manage"


def state_of(status: dict[str, Any]) -> str:
    return dict(parse_qsl(urlsplit(status["authorization"]["url"]).query))["state"]


def new_client(kube: FakeKube) -> None:
    kube.put_secret(NS, "acme-oauth", {"client_id": CLIENT_ID, "client_secret": "s3cret"})
    kube.put_resource("googleclients", client_body())


async def test_an_unticked_permission_stores_nothing_revokes_and_asks_to_tick_it() -> None:
    op, kube, google, _, events = operator_with_fakes()
    new_client(kube)
    status = await run_pass(op, kube, ClientMemory(status={}))
    google.unticked = {BUSINESS}

    answer = await ConsentService(op).complete(state_of(status), "partial", "")

    assert (answer.outcome, answer.status) == (Outcome.SCOPES_NOT_GRANTED, 403)
    assert "business listings" in answer.message and "tick every permission" in answer.message
    assert kube.plain(NS, "acme-google-oauth") is None
    assert google.revoked == ["1//refresh-from-partial"]
    failure = kube.resource("googleclients", NS, "acme")["status"]["lastConsentFailure"]
    assert (failure["reason"], failure["missingScopes"]) == (Reason.SCOPES_NOT_GRANTED, [BUSINESS])
    assert (Reason.SCOPES_NOT_GRANTED, True) in [(e[2], e[1]) for e in events.posted]
    page = outcome_page(answer)
    assert page.status == 403 and "Some permissions were not granted" in page.html

    status = await run_pass(op, kube)
    assert condition(status, AUTHORIZED) == ("False", Reason.SCOPES_NOT_GRANTED)
    assert BUSINESS in find_condition(status["conditions"], AUTHORIZED)["message"]
    assert status["authorization"]["url"]  # a fresh consent URL

    google.unticked = set()
    answer = await ConsentService(op).complete(state_of(status), "full", "")
    assert answer.outcome is Outcome.AUTHORIZED
    status = await run_pass(op, kube)
    assert condition(status, AUTHORIZED) == ("True", Reason.AUTHORIZED)
    assert condition(status, READY) == ("True", Reason.TOKEN_VALID)
    assert google.revoked == ["1//refresh-from-partial"]


async def test_a_permission_removed_later_keeps_the_refresh_token_and_serves_no_new_token() -> None:
    op, kube, google, clock, _ = operator_with_fakes()
    new_client(kube)
    status = await run_pass(op, kube, ClientMemory(status={}))
    await ConsentService(op).complete(state_of(status), "code", "")
    status = await run_pass(op, kube)
    served = kube.plain(NS, "acme-google-token")
    google.unticked = {BUSINESS}
    clock.advance(minutes=50)

    status = await run_pass(op, kube)

    assert condition(status, AUTHORIZED) == ("False", Reason.SCOPES_NOT_GRANTED)
    assert google.calls["refresh"] == 1
    assert kube.plain(NS, "acme-google-token") == served
    assert (kube.plain(NS, "acme-google-oauth") or {})["refresh_token"] == "1//refresh-from-code"
    clock.advance(minutes=30)
    status = await run_pass(op, kube)
    assert google.calls["refresh"] == 1  # no call until a new consent
    assert condition(status, AUTHORIZED) == ("False", Reason.SCOPES_NOT_GRANTED)


async def test_a_time_limited_grant_is_shown_and_ends_with_no_call_to_google() -> None:
    op, kube, google, clock, _ = operator_with_fakes()
    new_client(kube)
    status = await run_pass(op, kube, ClientMemory(status={}))
    google.grant_lifetime = dt.timedelta(seconds=120)
    await ConsentService(op).complete(state_of(status), "code", "")

    status = await run_pass(op, kube)

    assert status["grantExpiresAt"] == "2026-01-01T12:02:00Z"
    assert "ends at 2026-01-01T12:02:00Z" in find_condition(status["conditions"], READY)["message"]
    calls = sum(google.calls.values())
    clock.advance(seconds=121)
    status = await run_pass(op, kube)
    authorized = find_condition(status["conditions"], AUTHORIZED)
    assert (authorized["status"], authorized["reason"]) == ("False", Reason.AUTHORIZATION_REVOKED)
    assert "time-limited access the person granted ended" in authorized["message"]
    clock.advance(minutes=30)
    await run_pass(op, kube)
    assert sum(google.calls.values()) == calls
