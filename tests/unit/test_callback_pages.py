"""The callback's pages: each outcome of the operator's answer -> status code and what it says."""

from __future__ import annotations

from typing import Any

import pytest

from fixtures.callback import ACCOUNT, AUTHORIZED, CLIENT, DENIED, TOKEN_SECRET, answer, read_page
from google_token_operator.consent.callback.pages import (
    Page,
    missing_state_page,
    operator_unreachable_page,
    outcome_page,
)
from google_token_operator.consent_state.contract import (
    ClientRef,
    ConsentAnswer,
    Outcome,
    parse_answer,
)

ACME = ClientRef("reviews", "acme")


def render(body: dict[str, Any]) -> Page:
    parsed = parse_answer(body)
    assert parsed is not None, body
    return outcome_page(parsed)


def test_authorized_names_the_client_the_account_the_secret_and_what_happens_next() -> None:
    page = render(AUTHORIZED)
    seen = read_page(page.html)

    assert page.status == 200
    assert seen.title.startswith("Google account connected")
    assert seen.heading == "Google account connected"
    assert f"{ACCOUNT} authorized GoogleClient reviews/acme." in seen.text
    assert f"access token into the Secret {TOKEN_SECRET} in namespace reviews" in seen.text
    assert "Within seconds" in seen.text
    assert "within about a minute" in seen.text


def test_denied_says_nothing_was_stored_and_how_to_try_again() -> None:
    page = render(DENIED)
    seen = read_page(page.html)

    assert page.status == 400
    assert seen.heading == "Consent denied"
    assert "not granted for GoogleClient reviews/acme, so nothing was stored" in seen.text
    assert DENIED["message"] in seen.text
    assert "google-token-operator authorize acme -n reviews" in seen.text
    # Denied during a re-consent, `authorize` would only answer "already authorized".
    assert "already authorized and this was a new consent" in seen.text
    assert "google-token-operator reauthorize acme -n reviews" in seen.text


@pytest.mark.parametrize(
    ("client", "name", "namespace"), [(None, "NAME", "NAMESPACE"), (CLIENT, "acme", "reviews")]
)
def test_invalid_state_points_at_the_current_consent_url(
    client: dict[str, str] | None, name: str, namespace: str
) -> None:
    page = render(answer("invalid_state", 400, "unknown state", client=client))
    seen = read_page(page.html)

    assert page.status == 400
    assert seen.heading == "This consent link is not valid"
    assert "unknown, has expired, or was already used" in seen.text
    assert (
        f"kubectl get googleclient {name} -n {namespace} "
        "-o jsonpath='{.status.authorization.url}'" in seen.text
    )
    assert f"google-token-operator authorize {name} -n {namespace}" in seen.text


def test_no_refresh_token_explains_how_to_get_one() -> None:
    page = render(answer("no_refresh_token", 400, "no refresh token", client=CLIENT))
    seen = read_page(page.html)

    assert page.status == 400
    assert seen.heading == "Google sent no refresh token"
    assert "approved the consent for GoogleClient reviews/acme but sent no refresh" in seen.text
    assert "https://myaccount.google.com/permissions" in seen.text
    assert "prompt=consent" in seen.text
    assert "google-token-operator authorize acme -n reviews" in seen.text


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, "Google answered invalid_grant: Bad Request: the code expired or was already used"),
        (502, "Google answered invalid_client: fix client_id/client_secret in Secret 'acme'"),
        (400, "Google answered redirect_uri_mismatch: make spec.redirectURI match it exactly"),
    ],
)
def test_exchange_failed_shows_what_google_answered_and_what_to_fix(
    status: int, message: str
) -> None:
    page = render(answer("exchange_failed", status, message, client=CLIENT))
    seen = read_page(page.html)

    assert page.status == status
    assert seen.heading == "The consent could not be completed"
    assert message in seen.text
    assert "nothing was stored" in seen.text


def test_missing_state_and_unreachable_operator() -> None:
    missing = missing_state_page()
    unreachable = operator_unreachable_page()

    assert missing.status == 400
    assert "state parameter that this request does not have" in read_page(missing.html).text
    assert unreachable.status == 502
    assert read_page(unreachable.html).heading == "The operator could not be reached"
    assert "Try the consent URL again in a minute" in read_page(unreachable.html).text


def test_values_are_escaped() -> None:
    hostile = "<script>alert(1)</script>"
    page = render(
        answer(
            "authorized",
            200,
            hostile,
            client={"namespace": "ns", "name": '"><img src=x>'},
            account=hostile,
            tokenSecret="<b>x</b>",
        )
    )

    assert "<script>" not in page.html
    assert "<img" not in page.html
    assert "<b>" not in page.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.html
    assert hostile in read_page(page.html).text  # shown as text, not run


def all_pages() -> list[Page]:
    failures = [outcome for outcome in Outcome if outcome is not Outcome.AUTHORIZED]
    pages = [render(answer(outcome, 400, "m", client=CLIENT)) for outcome in failures]
    return [render(AUTHORIZED), *pages, missing_state_page(), operator_unreachable_page()]


@pytest.mark.parametrize("page", all_pages(), ids=lambda page: read_page(page.html).heading)
def test_every_page_is_plain_complete_html(page: Page) -> None:
    seen = read_page(page.html)

    assert seen.title == f"{seen.heading} - google-token-operator"
    assert "$" not in page.html  # every placeholder filled
    for active in ("<script", "<form", "<iframe", "src="):
        assert active not in page.html


def test_parse_answer_reads_the_operator_contract() -> None:
    assert parse_answer(AUTHORIZED) == ConsentAnswer(
        Outcome.AUTHORIZED, 200, "Consent stored.", ACME, ACCOUNT, TOKEN_SECRET
    )
    assert parse_answer(answer("invalid_state", 400, "m")) == ConsentAnswer(
        Outcome.INVALID_STATE, 400, "m"
    )


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "authorized",
        {},
        answer("approved", 200, "m"),  # an outcome this version does not know
        {**answer("denied", 400, "m"), "status": "400"},
        answer("denied", True, "m"),
        answer("denied", 700, "m"),
        {**answer("denied", 400), "message": None},
        answer("denied", 400, "m", account=42),
        answer("authorized", 200, "m", tokenSecret=TOKEN_SECRET),  # which client?
        answer("authorized", 200, "m", client=CLIENT),  # which Secret?
    ],
)
def test_parse_answer_refuses_anything_else(body: Any) -> None:
    assert parse_answer(body) is None


def test_a_client_without_both_names_is_no_client() -> None:
    parsed = parse_answer(answer("denied", 400, "m", client={"namespace": "reviews", "name": ""}))

    assert parsed is not None
    assert parsed.client is None
