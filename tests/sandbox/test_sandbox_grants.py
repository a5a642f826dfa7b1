"""Google's grant semantics in the sandbox, driven through the /_sandbox/ control API.

One grant per (OAuth client, account), revoked as a whole; the 100-refresh-token cap;
unticked scopes; permissions removed later; session control's re-authentication;
time-limited access; apps in Testing publishing status.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from devkit.servers import SandboxServer
from fixtures.sandbox import OTHER, OWNER, REDIRECT_URI, SCOPES, TIMEOUT, authorize, post_token
from google_token_sandbox import CONTROL_PREFIX, REVOKE_PATH
from google_token_sandbox.state import (
    BUSINESS_SCOPE,
    DEMO_CLIENT_ID,
    EMAIL_SCOPE,
    IDENTITY_SCOPES,
    SCOPE_ALIASES,
    TESTING_GRANT_LIFETIME,
    ConsentPage,
    SandboxState,
    untickable_scopes,
)

EXPIRED = {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
SIGN_IN = {"openid", EMAIL_SCOPE}
SECOND_CLIENT = "second-client"
DRIVE_SCOPE = "https://www.googleapis.com/auth/drive"
TESTING_CLIENT = {
    "client_id": SECOND_CLIENT,
    "client_secret": "second-secret",
    "redirect_uris": [REDIRECT_URI],
    "publishing_status": "testing",
}


def control(sandbox: SandboxServer, path: str, body: Any = None) -> requests.Response:
    response = requests.post(sandbox.url + CONTROL_PREFIX + path, json=body, timeout=TIMEOUT)
    return response


def grants(sandbox: SandboxServer, client_id: str = DEMO_CLIENT_ID) -> list[dict[str, Any]]:
    response = requests.get(
        sandbox.url + CONTROL_PREFIX + "/grants", params={"client_id": client_id}, timeout=TIMEOUT
    )
    assert response.status_code == 200, response.text
    listing: list[dict[str, Any]] = response.json()
    return listing


def grant_of(sandbox: SandboxServer, email: str = OWNER) -> dict[str, Any]:
    [grant] = [grant for grant in grants(sandbox) if grant["email"] == email]
    return grant


def refresh(
    sandbox: SandboxServer, refresh_token: str, client_id: str = DEMO_CLIENT_ID
) -> requests.Response:
    secret = "second-secret" if client_id == SECOND_CLIENT else None
    fields = {"client_id": client_id, "client_secret": secret} if secret else {}
    return post_token(sandbox, grant_type="refresh_token", refresh_token=refresh_token, **fields)


def revoke(sandbox: SandboxServer, token: str) -> requests.Response:
    return requests.post(sandbox.url + REVOKE_PATH, data={"token": token}, timeout=TIMEOUT)


def granted(answer: dict[str, Any]) -> set[str]:
    return set(answer["scope"].split())


def full_names(scopes: list[str]) -> list[str]:
    return [SCOPE_ALIASES.get(scope, scope) for scope in scopes]


def advance_clock(sandbox: SandboxServer, seconds: float) -> None:
    sandbox.state.clock = lambda: time.time() + seconds


# -- one grant per (client, account) ------------------------------------------------------


def test_revoking_any_token_of_a_grant_ends_every_token_of_it(sandbox: SandboxServer) -> None:
    first, second = (authorize(sandbox, login_hint=OWNER) for _ in range(2))
    others = authorize(sandbox, login_hint=OTHER)["refresh_token"]
    sandbox.state.register_client(SECOND_CLIENT, "second-secret", [REDIRECT_URI])
    other_client = sandbox.state.mint_grant(SECOND_CLIENT, OWNER, SCOPES)

    assert revoke(sandbox, second["access_token"]).status_code == 200

    assert refresh(sandbox, first["refresh_token"]).json() == EXPIRED
    assert refresh(sandbox, second["refresh_token"]).json() == EXPIRED
    # Another account, or another OAuth client, has a grant of its own.
    assert refresh(sandbox, others).status_code == 200
    assert refresh(sandbox, other_client, SECOND_CLIENT).status_code == 200
    assert [(grant["email"], grant["live"]) for grant in grants(sandbox)] == [
        (OWNER, False),
        (OTHER, True),
    ]


def test_the_101st_consent_kills_the_oldest_refresh_token(sandbox: SandboxServer) -> None:
    tokens = [authorize(sandbox, login_hint=OWNER)["refresh_token"] for _ in range(101)]

    assert refresh(sandbox, tokens[0]).json() == EXPIRED
    assert refresh(sandbox, tokens[1]).status_code == 200
    assert refresh(sandbox, tokens[100]).status_code == 200
    # Silently, and only that token: the grant lives on.
    assert grant_of(sandbox)["live"] is True


def test_the_grant_listing_counts_refresh_and_revoke_calls_and_shows_no_token(
    sandbox: SandboxServer,
) -> None:
    answer = authorize(sandbox, login_hint=OWNER)
    other = authorize(sandbox, login_hint=OTHER)
    for _ in range(3):
        refresh(sandbox, answer["refresh_token"])
    revoke(sandbox, answer["refresh_token"])
    revoke(sandbox, answer["refresh_token"])  # already revoked: 400, still a call
    refresh(sandbox, answer["refresh_token"])  # invalid_grant, still a call
    refresh(sandbox, other["refresh_token"])
    # Calls an injected fault answers reach the count too.
    sandbox.state.inject_faults("token", status=503)
    refresh(sandbox, other["refresh_token"])

    listing = grants(sandbox)

    assert listing == [
        {
            "email": OWNER,
            "scopes": sorted(SIGN_IN | {BUSINESS_SCOPE}),
            "live": False,
            "refresh_calls": 4,
            "revoke_calls": 2,
        },
        {
            "email": OTHER,
            "scopes": sorted(SIGN_IN | {BUSINESS_SCOPE}),
            "live": True,
            "refresh_calls": 2,
            "revoke_calls": 0,
        },
    ]
    assert not sandbox.state.issued_secrets() & set(str(listing).split("'"))
    assert control(sandbox, "/counts/reset").status_code == 200
    assert {(g["refresh_calls"], g["revoke_calls"]) for g in grants(sandbox)} == {(0, 0)}


# -- unticked scopes and scopes removed later ------------------------------------------------


def test_auto_approved_consents_leave_out_unticked_scopes(sandbox: SandboxServer) -> None:
    assert control(sandbox, "/settings", {"unticked_scopes": [BUSINESS_SCOPE]}).status_code == 200

    partial = authorize(sandbox, login_hint=OWNER)

    assert granted(partial) == SIGN_IN
    assert granted(refresh(sandbox, partial["refresh_token"]).json()) == SIGN_IN
    assert grant_of(sandbox)["scopes"] == sorted(SIGN_IN)
    assert control(sandbox, "/settings", {"unticked_scopes": []}).status_code == 200
    assert granted(authorize(sandbox, login_hint=OWNER)) == SIGN_IN | {BUSINESS_SCOPE}


def test_sign_in_scopes_cannot_be_unticked(sandbox: SandboxServer) -> None:
    control(sandbox, "/settings", {"unticked_scopes": ["openid", "email", BUSINESS_SCOPE]})

    assert granted(authorize(sandbox)) == SIGN_IN


def test_scopes_removed_in_the_account_leave_later_refresh_answers(
    sandbox: SandboxServer,
) -> None:
    refresh_token = authorize(sandbox, login_hint=OWNER)["refresh_token"]
    body = {"client_id": DEMO_CLIENT_ID, "email": OWNER, "scopes": [BUSINESS_SCOPE]}

    assert control(sandbox, "/grants/remove-scopes", body).status_code == 200

    assert granted(refresh(sandbox, refresh_token).json()) == SIGN_IN
    assert grant_of(sandbox)["scopes"] == sorted(SIGN_IN)
    # Asking for the removed scope explicitly is asking for more than granted.
    narrowed = post_token(
        sandbox, grant_type="refresh_token", refresh_token=refresh_token, scope=BUSINESS_SCOPE
    )
    assert narrowed.json()["error"] == "invalid_scope"


# -- re-authentication ---------------------------------------------------------------------


@pytest.mark.parametrize("subtype", ["invalid_rapt", "rapt_required"])
def test_reauthentication_answers_invalid_grant_with_the_subtype_until_a_new_consent(
    sandbox: SandboxServer, subtype: str
) -> None:
    old = authorize(sandbox, login_hint=OWNER)["refresh_token"]
    other = authorize(sandbox, login_hint=OTHER)["refresh_token"]
    body = {"client_id": DEMO_CLIENT_ID, "email": OWNER, "subtype": subtype}

    assert control(sandbox, "/grants/require-reauth", body).status_code == 200

    answers = [refresh(sandbox, old) for _ in range(2)]
    assert [answer.status_code for answer in answers] == [400, 400]
    assert answers[1].json() == {
        "error": "invalid_grant",
        "error_description": f"reauth related error ({subtype})",
        "error_uri": "https://support.google.com/a/answer/9368756",
        "error_subtype": subtype,
    }
    assert refresh(sandbox, other).status_code == 200
    new = authorize(sandbox, login_hint=OWNER)["refresh_token"]
    assert refresh(sandbox, new).status_code == 200
    assert refresh(sandbox, old).status_code == 200


# -- grant lifetimes -------------------------------------------------------------------------


def test_time_limited_access_is_announced_and_ends(sandbox: SandboxServer) -> None:
    assert control(sandbox, "/settings", {"time_limited_access": 120}).status_code == 200
    answer = authorize(sandbox, login_hint=OWNER)
    assert answer["refresh_token_expires_in"] == 120

    advance_clock(sandbox, 100)
    later = refresh(sandbox, answer["refresh_token"]).json()
    assert 19 <= later["refresh_token_expires_in"] <= 20

    advance_clock(sandbox, 121)
    assert refresh(sandbox, answer["refresh_token"]).json() == EXPIRED
    assert grant_of(sandbox)["live"] is False


def test_time_limited_access_applies_to_later_consents_only(sandbox: SandboxServer) -> None:
    before = authorize(sandbox)["refresh_token"]
    control(sandbox, "/settings", {"time_limited_access": 60})
    limited = authorize(sandbox)
    control(sandbox, "/settings", {"time_limited_access": None})

    assert "refresh_token_expires_in" not in authorize(sandbox)
    assert limited["refresh_token_expires_in"] == 60
    assert "refresh_token_expires_in" not in refresh(sandbox, before).json()


def test_an_app_in_testing_status_gets_refresh_tokens_that_die_after_7_days(
    sandbox: SandboxServer,
) -> None:
    assert control(sandbox, "/clients", TESTING_CLIENT).status_code == 200
    refresh_token = sandbox.state.mint_grant(SECOND_CLIENT, OWNER, SCOPES)

    advance_clock(sandbox, TESTING_GRANT_LIFETIME - 60)
    answer = refresh(sandbox, refresh_token, SECOND_CLIENT).json()
    # Nothing announces it: the death is silent until the refresh fails.
    assert "refresh_token_expires_in" not in answer

    advance_clock(sandbox, TESTING_GRANT_LIFETIME)
    assert refresh(sandbox, refresh_token, SECOND_CLIENT).json() == EXPIRED


def test_an_app_in_testing_status_keeps_a_grant_of_sign_in_scopes_only(
    sandbox: SandboxServer,
) -> None:
    control(sandbox, "/clients", TESTING_CLIENT)
    refresh_token = sandbox.state.mint_grant(SECOND_CLIENT, OWNER, ["openid", "email"])

    advance_clock(sandbox, 30 * 24 * 3600)

    assert refresh(sandbox, refresh_token, SECOND_CLIENT).status_code == 200


# -- bad control requests ----------------------------------------------------------------------


def test_bad_grant_requests_say_what_is_wrong(sandbox: SandboxServer) -> None:
    owner = {"client_id": DEMO_CLIENT_ID, "email": OWNER}
    for path, body, status, words in (
        ("/grants/require-reauth", {**owner, "subtype": "nap"}, 400, "subtype must be one of"),
        ("/grants/require-reauth", owner, 400, "subtype is required"),
        ("/grants/require-reauth", {**owner, "email": "x@y", "subtype": "invalid_rapt"}, 404, ""),
        ("/grants/remove-scopes", owner, 400, "scopes must be"),
        ("/grants/remove-scopes", {**owner, "client_id": "nobody", "scopes": []}, 404, ""),
        ("/settings", {"unticked_scopes": "business"}, 400, "unticked_scopes must be"),
        ("/settings", {"time_limited_access": 0}, 400, "time_limited_access must be"),
        ("/clients", {**TESTING_CLIENT, "publishing_status": "beta"}, 400, "must be one of"),
    ):
        response = control(sandbox, path, body)
        assert response.status_code == status, (path, body, response.text)
        assert words in response.json()["error"], (path, body)
    listing = requests.get(sandbox.url + CONTROL_PREFIX + "/grants", timeout=TIMEOUT)
    assert listing.status_code == 400
    assert "client_id is required" in listing.json()["error"]


@pytest.mark.parametrize(
    ("requested", "untickable"),
    [
        (["openid", "email", BUSINESS_SCOPE], {BUSINESS_SCOPE}),
        ([BUSINESS_SCOPE, DRIVE_SCOPE], {BUSINESS_SCOPE, DRIVE_SCOPE}),
        # One scope, or sign-in scopes only: Google's screen is all or nothing.
        ([BUSINESS_SCOPE], set()),
        (["openid", "email", "profile"], set()),
    ],
)
def test_which_scopes_google_lets_the_person_untick(
    requested: list[str], untickable: set[str]
) -> None:
    assert untickable_scopes(full_names(requested)) == untickable


def test_a_lone_scope_cannot_be_unticked(sandbox: SandboxServer) -> None:
    control(sandbox, "/settings", {"unticked_scopes": [BUSINESS_SCOPE]})

    assert granted(authorize(sandbox, scope=BUSINESS_SCOPE)) == {BUSINESS_SCOPE}


OFFERED = ("openid", "email", "profile", BUSINESS_SCOPE, DRIVE_SCOPE)


@settings(max_examples=60, deadline=None)
@given(
    requested=st.lists(st.sampled_from(OFFERED), min_size=1, unique=True),
    ticked=st.sets(st.sampled_from(OFFERED)),
)
def test_a_consent_grants_the_requested_scopes_less_those_unticked(
    requested: list[str], ticked: set[str]
) -> None:
    state = SandboxState()
    query = {
        "client_id": DEMO_CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": " ".join(requested),
    }
    page = state.start_authorization(query)
    assert isinstance(page, ConsentPage)

    redirect = state.finish_consent(page.request_id, True, OWNER, ticked=full_names(list(ticked)))

    granted_scopes = set(dict(parse_qsl(urlsplit(redirect.location).query))["scope"].split())
    wanted = set(full_names(requested))
    # Never more than requested; everything that could not be unticked, and what stayed ticked.
    assert granted_scopes == (wanted - page.untickable) | (
        page.untickable & set(full_names(list(ticked)))
    )
    assert page.untickable <= wanted - IDENTITY_SCOPES
