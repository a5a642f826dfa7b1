"""The sandbox's OAuth endpoints over real HTTP: answers, the error table, faults, counts."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import time

import pytest
import requests

from devkit.servers import SandboxServer
from fixtures.sandbox import (
    OWNER,
    REDIRECT_URI,
    SCOPES,
    TIMEOUT,
    access_token,
    approve,
    authorize,
    exchange,
    post_token,
)
from google_token_sandbox import REVOKE_PATH, TOKENINFO_PATH, USERINFO_PATH
from google_token_sandbox.state import (
    BUSINESS_SCOPE,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_REDIRECT_URIS,
    EMAIL_SCOPE,
)

VERIFIER = "v" * 43 + "-._~" + "0123456789"
S256_CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).decode()
S256_CHALLENGE = S256_CHALLENGE.rstrip("=")
GRANTED = {"openid", EMAIL_SCOPE, BUSINESS_SCOPE}
# Where the sandbox server would log: aiohttp's server loggers and the sandbox package.
SERVER_LOGGERS = ("aiohttp", "google_token_sandbox")


def refresh(sandbox: SandboxServer, refresh_token: str, **form: str) -> requests.Response:
    return post_token(sandbox, grant_type="refresh_token", refresh_token=refresh_token, **form)


def other_client(sandbox: SandboxServer) -> tuple[str, str]:
    sandbox.state.register_client("other-client", "other-secret", [REDIRECT_URI], "Other App")
    return "other-client", "other-secret"


# -- successful answers -------------------------------------------------------------------


def test_code_exchange_answers_like_google(sandbox: SandboxServer) -> None:
    redirect = approve(sandbox)
    assert redirect["state"] == "state-123"
    # Google answers with the full URL of `email`, in no promised order.
    assert set(redirect["scope"].split()) == GRANTED

    response = exchange(sandbox, redirect["code"])

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    answer = response.json()
    assert set(answer) == {
        "access_token",
        "expires_in",
        "refresh_token",
        "scope",
        "token_type",
        "id_token",
    }
    assert answer["expires_in"] == 3599
    assert answer["token_type"] == "Bearer"
    assert set(answer["scope"].split()) == GRANTED


def test_tokens_have_googles_prefixes_and_enough_randomness(sandbox: SandboxServer) -> None:
    code = approve(sandbox)["code"]
    answer = exchange(sandbox, code).json()

    for value, prefix in (
        (code, "4/sbx-"),
        (answer["access_token"], "ya29.sbx-"),
        (answer["refresh_token"], "1//sbx-"),
    ):
        assert value.startswith(prefix)
        assert re.fullmatch(r"[A-Za-z0-9_-]{32,}", value.removeprefix(prefix))


def test_token_lifetime_is_configurable(sandbox: SandboxServer) -> None:
    sandbox.state.token_lifetime = 60
    assert authorize(sandbox)["expires_in"] == 60


def test_refresh_answers_without_a_new_refresh_token(sandbox: SandboxServer) -> None:
    refresh_token = authorize(sandbox)["refresh_token"]

    answer = refresh(sandbox, refresh_token).json()

    assert set(answer) == {"access_token", "expires_in", "scope", "token_type", "id_token"}
    assert set(answer["scope"].split()) == GRANTED


def test_refresh_may_narrow_scopes_but_not_widen_them(sandbox: SandboxServer) -> None:
    refresh_token = sandbox.state.mint_grant(DEMO_CLIENT_ID, OWNER, [BUSINESS_SCOPE, "email"])

    narrowed = refresh(sandbox, refresh_token, scope=BUSINESS_SCOPE)
    widened = refresh(sandbox, refresh_token, scope="openid " + BUSINESS_SCOPE)

    assert narrowed.json()["scope"] == BUSINESS_SCOPE
    assert "id_token" not in narrowed.json()
    assert widened.status_code == 400
    assert widened.json()["error"] == "invalid_scope"


@pytest.mark.parametrize(
    ("params", "earlier_grant", "gets_refresh_token"),
    [
        pytest.param({}, None, True, id="offline+consent"),
        pytest.param({"access_type": None}, None, False, id="online-by-default"),
        pytest.param({"prompt": None}, None, True, id="first-consent-without-prompt"),
        pytest.param({"prompt": None}, SCOPES, False, id="already-granted-without-prompt"),
        pytest.param({}, SCOPES, True, id="already-granted-with-prompt-consent"),
        pytest.param({"prompt": None}, ("openid",), True, id="new-scope-shows-consent"),
    ],
)
def test_refresh_token_only_when_offline_and_consent_shown(
    sandbox: SandboxServer,
    params: dict[str, str | None],
    earlier_grant: tuple[str, ...] | None,
    gets_refresh_token: bool,
) -> None:
    if earlier_grant:
        sandbox.state.mint_grant(DEMO_CLIENT_ID, OWNER, earlier_grant)

    answer = authorize(sandbox, login_hint=OWNER, **params)

    assert ("refresh_token" in answer) is gets_refresh_token


def test_include_granted_scopes_adds_earlier_grants(sandbox: SandboxServer) -> None:
    sandbox.state.mint_grant(DEMO_CLIENT_ID, OWNER, ["https://www.googleapis.com/auth/drive"])

    redirect = approve(sandbox, login_hint=OWNER, include_granted_scopes="true")

    assert set(redirect["scope"].split()) == GRANTED | {"https://www.googleapis.com/auth/drive"}


def test_client_credentials_may_come_as_http_basic(sandbox: SandboxServer) -> None:
    code = approve(sandbox)["code"]

    response = requests.post(
        sandbox.env["GOOGLE_OAUTH_TOKEN_URI"],
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
        auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
        timeout=TIMEOUT,
    )

    assert response.status_code == 200, response.text


def test_pkce_s256_and_plain_verify(sandbox: SandboxServer) -> None:
    s256 = approve(sandbox, code_challenge=S256_CHALLENGE, code_challenge_method="S256")
    # `plain` is the default when a challenge comes without a method.
    plain = approve(sandbox, code_challenge=VERIFIER)

    for redirect in (s256, plain):
        assert exchange(sandbox, redirect["code"], code_verifier=VERIFIER).status_code == 200


# -- the error table of docs/google-behaviour.md, one test per row ------------------------------


def assert_oauth_error(
    response: requests.Response, status: int, error: str, description: str
) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"error": error, "error_description": description}


def test_row_refresh_token_revoked(sandbox: SandboxServer) -> None:
    refresh_token = sandbox.state.mint_grant(DEMO_CLIENT_ID, OWNER, SCOPES)
    sandbox.state.revoke_grants(DEMO_CLIENT_ID, OWNER)

    assert_oauth_error(
        refresh(sandbox, refresh_token), 400, "invalid_grant", "Token has been expired or revoked."
    )


def test_row_refresh_token_expired(sandbox: SandboxServer) -> None:
    sandbox.state.time_limited_access = 7 * 24 * 3600
    answer = authorize(sandbox)
    assert answer["refresh_token_expires_in"] == 7 * 24 * 3600
    sandbox.state.clock = lambda: time.time() + 7 * 24 * 3600

    assert_oauth_error(
        refresh(sandbox, answer["refresh_token"]),
        400,
        "invalid_grant",
        "Token has been expired or revoked.",
    )


def test_row_refresh_token_over_the_limit_oldest_dies(sandbox: SandboxServer) -> None:
    sandbox.state.refresh_token_limit = 2
    oldest, middle, newest = (
        sandbox.state.mint_grant(DEMO_CLIENT_ID, OWNER, SCOPES) for _ in range(3)
    )

    assert_oauth_error(
        refresh(sandbox, oldest), 400, "invalid_grant", "Token has been expired or revoked."
    )
    assert refresh(sandbox, middle).status_code == 200
    assert refresh(sandbox, newest).status_code == 200


def test_row_code_reused(sandbox: SandboxServer) -> None:
    code = approve(sandbox)["code"]
    assert exchange(sandbox, code).status_code == 200

    assert_oauth_error(exchange(sandbox, code), 400, "invalid_grant", "Bad Request")


def test_row_code_expired(sandbox: SandboxServer) -> None:
    sandbox.state.code_lifetime = 0

    assert_oauth_error(
        exchange(sandbox, approve(sandbox)["code"]), 400, "invalid_grant", "Bad Request"
    )


def test_row_pkce_verifier_missing(sandbox: SandboxServer) -> None:
    code = approve(sandbox, code_challenge=S256_CHALLENGE, code_challenge_method="S256")["code"]

    assert_oauth_error(exchange(sandbox, code), 400, "invalid_grant", "Missing code verifier.")


def test_row_pkce_verifier_wrong(sandbox: SandboxServer) -> None:
    code = approve(sandbox, code_challenge=S256_CHALLENGE, code_challenge_method="S256")["code"]

    assert_oauth_error(
        exchange(sandbox, code, code_verifier=VERIFIER + "x"),
        400,
        "invalid_grant",
        "Invalid code verifier.",
    )


def test_row_unknown_client(sandbox: SandboxServer) -> None:
    code = approve(sandbox)["code"]

    assert_oauth_error(
        exchange(sandbox, code, client_id="nobody.apps.googleusercontent.com"),
        401,
        "invalid_client",
        "The OAuth client was not found.",
    )


def test_row_wrong_client_secret(sandbox: SandboxServer) -> None:
    code = approve(sandbox)["code"]

    assert_oauth_error(
        exchange(sandbox, code, client_secret="GOCSPX-wrong"), 401, "invalid_client", "Unauthorized"
    )


def test_row_broken_client_secret_until_restored(sandbox: SandboxServer) -> None:
    refresh_token = sandbox.state.mint_grant(DEMO_CLIENT_ID, OWNER, SCOPES)
    sandbox.state.break_client_secret(DEMO_CLIENT_ID)

    assert_oauth_error(refresh(sandbox, refresh_token), 401, "invalid_client", "Unauthorized")
    sandbox.state.restore_client_secret(DEMO_CLIENT_ID)
    assert refresh(sandbox, refresh_token).status_code == 200


def test_row_refresh_token_of_another_client(sandbox: SandboxServer) -> None:
    client_id, _ = other_client(sandbox)
    refresh_token = sandbox.state.mint_grant(client_id, OWNER, SCOPES)

    assert_oauth_error(refresh(sandbox, refresh_token), 401, "unauthorized_client", "Unauthorized")


def test_row_redirect_uri_differs_at_exchange(sandbox: SandboxServer) -> None:
    code = approve(sandbox, redirect_uri=DEMO_REDIRECT_URIS[0])["code"]

    assert_oauth_error(
        exchange(sandbox, code, redirect_uri=DEMO_REDIRECT_URIS[1]),
        400,
        "redirect_uri_mismatch",
        "Bad Request",
    )


@pytest.mark.parametrize(
    ("status", "error"),
    [(429, "temporarily_unavailable"), (500, "server_error"), (503, "temporarily_unavailable")],
)
def test_row_overload(sandbox: SandboxServer, status: int, error: str) -> None:
    refresh_token = sandbox.state.mint_grant(DEMO_CLIENT_ID, OWNER, SCOPES)
    sandbox.state.inject_token_faults(count=2, status=status, retry_after=7)

    failures = [refresh(sandbox, refresh_token) for _ in range(2)]
    recovered = refresh(sandbox, refresh_token)

    for response in failures:
        assert response.status_code == status
        assert response.json()["error"] == error
        assert response.headers["Retry-After"] == "7"
    assert recovered.status_code == 200
    assert sandbox.state.counts["token"] == 3
    assert sandbox.state.counts["token.refresh_token"] == 3


# -- other token endpoint answers ---------------------------------------------------------


def test_unsupported_grant_type(sandbox: SandboxServer) -> None:
    assert_oauth_error(
        post_token(sandbox, grant_type="password"),
        400,
        "unsupported_grant_type",
        "Invalid grant_type: password",
    )


def test_a_failed_exchange_spends_the_code(sandbox: SandboxServer) -> None:
    code = approve(sandbox)["code"]
    assert exchange(sandbox, code, redirect_uri=DEMO_REDIRECT_URIS[1]).status_code == 400

    assert_oauth_error(exchange(sandbox, code), 400, "invalid_grant", "Bad Request")


def test_a_code_of_another_client_is_refused(sandbox: SandboxServer) -> None:
    client_id, client_secret = other_client(sandbox)
    code = approve(sandbox)["code"]

    response = exchange(sandbox, code, client_id=client_id, client_secret=client_secret)

    assert_oauth_error(response, 400, "invalid_grant", "Bad Request")


def test_a_dropped_connection_fault(sandbox: SandboxServer) -> None:
    sandbox.state.inject_token_faults(count=1, status=0)

    with pytest.raises(requests.ConnectionError):
        post_token(sandbox, grant_type="refresh_token", refresh_token="1//sbx-none")
    assert sandbox.state.counts["token"] == 1


# -- revoke, userinfo, tokeninfo ----------------------------------------------------------


def revoke(sandbox: SandboxServer, token: str) -> requests.Response:
    return requests.post(sandbox.url + REVOKE_PATH, data={"token": token}, timeout=TIMEOUT)


def tokeninfo(sandbox: SandboxServer, token: str) -> requests.Response:
    return requests.get(
        sandbox.url + TOKENINFO_PATH, params={"access_token": token}, timeout=TIMEOUT
    )


def test_revoking_the_refresh_token_kills_its_access_tokens(sandbox: SandboxServer) -> None:
    answer = authorize(sandbox)

    response = revoke(sandbox, answer["refresh_token"])

    assert (response.status_code, response.json()) == (200, {})
    assert tokeninfo(sandbox, answer["access_token"]).status_code == 400
    assert refresh(sandbox, answer["refresh_token"]).json()["error"] == "invalid_grant"


def test_revoking_an_access_token_kills_its_refresh_token(sandbox: SandboxServer) -> None:
    answer = authorize(sandbox)

    assert revoke(sandbox, answer["access_token"]).status_code == 200

    assert refresh(sandbox, answer["refresh_token"]).json()["error"] == "invalid_grant"


def test_revoking_an_unknown_or_revoked_token_fails(sandbox: SandboxServer) -> None:
    answer = authorize(sandbox)
    revoke(sandbox, answer["refresh_token"])

    for token in ("ya29.unknown", answer["refresh_token"]):
        assert_oauth_error(revoke(sandbox, token), 400, "invalid_token", "Token expired or revoked")


def test_userinfo_names_the_account(sandbox: SandboxServer) -> None:
    token = authorize(sandbox, login_hint=OWNER)["access_token"]

    response = requests.get(
        sandbox.env["GOOGLE_USERINFO_URI"],
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT,
    )

    info = response.json()
    assert info["email"] == OWNER
    assert info["email_verified"] is True
    assert info["sub"].isdigit()
    assert len(info["sub"]) == 21


def test_userinfo_refuses_a_bad_token(sandbox: SandboxServer) -> None:
    response = requests.get(
        sandbox.url + USERINFO_PATH,
        headers={"Authorization": "Bearer ya29.nothing"},
        timeout=TIMEOUT,
    )

    assert_oauth_error(response, 401, "invalid_request", "Invalid Credentials")
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def test_tokeninfo_answers_strings(sandbox: SandboxServer) -> None:
    sandbox.state.token_lifetime = 600
    token = authorize(sandbox, login_hint=OWNER)["access_token"]

    info = tokeninfo(sandbox, token).json()

    assert info["aud"] == DEMO_CLIENT_ID
    assert info["email"] == OWNER
    assert set(info["scope"].split()) == GRANTED
    assert isinstance(info["exp"], str)
    assert isinstance(info["expires_in"], str)
    assert 595 <= int(info["expires_in"]) <= 600
    assert abs(int(info["exp"]) - (time.time() + 600)) < 5


def test_tokeninfo_refuses_an_expired_token(sandbox: SandboxServer) -> None:
    token = access_token(sandbox)
    sandbox.state.clock = lambda: time.time() + 3600

    assert_oauth_error(tokeninfo(sandbox, token), 400, "invalid_token", "Invalid Value")


# -- counts, secrets, logs ----------------------------------------------------------------


def test_counts_per_endpoint(sandbox: SandboxServer) -> None:
    answer = authorize(sandbox)
    refresh(sandbox, answer["refresh_token"])
    tokeninfo(sandbox, answer["access_token"])

    counts = sandbox.state.counts
    assert counts["auth"] == 1
    assert counts["token"] == 2
    assert counts["token.authorization_code"] == 1
    assert counts["token.refresh_token"] == 1
    assert counts["tokeninfo"] == 1
    assert counts["revoke"] == 0

    sandbox.state.reset_counts()
    assert set(sandbox.state.counts.values()) == {0}


def test_issued_secrets_lists_everything_handed_out(sandbox: SandboxServer) -> None:
    code = approve(sandbox)["code"]
    answer = exchange(sandbox, code).json()

    issued = sandbox.state.issued_secrets()

    expected = {code, answer["access_token"], answer["refresh_token"], answer["id_token"]}
    assert expected | {DEMO_CLIENT_SECRET} <= issued


def test_the_sandbox_logs_no_secret(
    sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Only the server side is captured: urllib3 on the client side logs URLs with their
    # queries, and those would put a (sandbox) token into the test report.
    for server_logger in SERVER_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=server_logger)
    answer = authorize(sandbox)
    refresh(sandbox, answer["refresh_token"])
    tokeninfo(sandbox, answer["access_token"])
    exchange(sandbox, "4/sbx-unknown-code")
    revoke(sandbox, answer["access_token"])

    # The server keeps no access log (query strings carry codes and tokens), so whatever it
    # logs at any level is checked here.
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert not [secret for secret in sandbox.state.issued_secrets() if secret in logged]
