"""Google's own client libraries, used as clients, accept the sandbox as Google.

google-auth refreshes and reports errors as it would against Google; google-auth-oauthlib's
Flow (PKCE on) completes a code exchange, and fails as the error table says when the
verifier, the code, the redirect URI or the client secret is wrong.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import google.auth._exponential_backoff
import google.oauth2.credentials
import pytest
import requests
from google.auth.exceptions import RefreshError, TransportError
from google.auth.transport.requests import Request
from google.oauth2 import id_token
from google_auth_oauthlib.flow import Flow
from oauthlib.oauth2.rfc6749 import errors as oauth_errors

from devkit.servers import SandboxServer
from fixtures.sandbox import OWNER, REDIRECT_URI, SCOPES, TIMEOUT, redirect_query
from google_token_sandbox import CERTS_PATH
from google_token_sandbox.state import (
    BUSINESS_SCOPE,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_REDIRECT_URIS,
    EMAIL_SCOPE,
    TESTING_GRANT_LIFETIME,
)


def credentials(
    sandbox: SandboxServer,
    refresh_token: str,
    client_id: str = DEMO_CLIENT_ID,
    client_secret: str = DEMO_CLIENT_SECRET,
) -> google.oauth2.credentials.Credentials:
    return google.oauth2.credentials.Credentials(
        token=None,
        refresh_token=refresh_token,
        token_uri=sandbox.env["GOOGLE_OAUTH_TOKEN_URI"],
        client_id=client_id,
        client_secret=client_secret,
        scopes=list(SCOPES),
    )


def refresh_error(creds: google.oauth2.credentials.Credentials) -> RefreshError:
    with pytest.raises(RefreshError) as caught:
        creds.refresh(Request())
    return caught.value


@pytest.fixture
def backoff_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """google-auth's retry pauses, recorded instead of slept."""
    sleeps: list[float] = []

    class Clock:
        @staticmethod
        def sleep(seconds: float) -> None:
            sleeps.append(seconds)

    monkeypatch.setattr(google.auth._exponential_backoff, "time", Clock)
    return sleeps


# -- google.oauth2.credentials.Credentials ------------------------------------------------


def test_credentials_refresh_succeeds(sandbox: SandboxServer) -> None:
    sandbox.state.token_lifetime = 600
    creds = credentials(sandbox, sandbox.state.mint_grant(DEMO_CLIENT_ID, OWNER, SCOPES))

    creds.refresh(Request())

    assert creds.token.startswith("ya29.")
    assert creds.valid
    remaining = creds.expiry - dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert dt.timedelta(seconds=590) < remaining <= dt.timedelta(seconds=600)
    assert sandbox.state.counts["token.refresh_token"] == 1


def test_credentials_refresh_after_revocation_is_invalid_grant(sandbox: SandboxServer) -> None:
    creds = credentials(sandbox, sandbox.state.mint_grant(DEMO_CLIENT_ID, OWNER, SCOPES))
    sandbox.state.revoke_grants(DEMO_CLIENT_ID, OWNER)

    error = refresh_error(creds)

    assert error.args[0] == "invalid_grant: Token has been expired or revoked."
    assert error.args[1]["error"] == "invalid_grant"
    assert error.retryable is False


def test_credentials_of_an_unknown_client(sandbox: SandboxServer) -> None:
    refresh_token = sandbox.state.mint_grant(DEMO_CLIENT_ID, OWNER, SCOPES)

    error = refresh_error(credentials(sandbox, refresh_token, client_id="nobody"))

    assert error.args[0] == "invalid_client: The OAuth client was not found."
    assert error.retryable is False


def test_credentials_with_a_rotated_secret(sandbox: SandboxServer) -> None:
    creds = credentials(sandbox, sandbox.state.mint_grant(DEMO_CLIENT_ID, OWNER, SCOPES))
    sandbox.state.break_client_secret(DEMO_CLIENT_ID)

    assert refresh_error(creds).args[0] == "invalid_client: Unauthorized"


def test_credentials_with_another_clients_refresh_token(sandbox: SandboxServer) -> None:
    sandbox.state.register_client("other-client", "other-secret", [REDIRECT_URI])
    refresh_token = sandbox.state.mint_grant("other-client", OWNER, SCOPES)

    assert refresh_error(credentials(sandbox, refresh_token)).args[0] == (
        "unauthorized_client: Unauthorized"
    )


@pytest.mark.parametrize("status", [429, 500, 503])
def test_google_auth_retries_overload_and_calls_it_retryable(
    sandbox: SandboxServer, backoff_sleeps: list[float], status: int
) -> None:
    creds = credentials(sandbox, sandbox.state.mint_grant(DEMO_CLIENT_ID, OWNER, SCOPES))
    # google-auth makes 3 attempts; fail them all.
    sandbox.state.inject_token_faults(count=3, status=status, retry_after=1)

    error = refresh_error(creds)

    assert error.retryable is True
    assert sandbox.state.counts["token"] == 3
    assert len(backoff_sleeps) == 2


def test_google_auth_recovers_within_its_retries(
    sandbox: SandboxServer, backoff_sleeps: list[float]
) -> None:
    creds = credentials(sandbox, sandbox.state.mint_grant(DEMO_CLIENT_ID, OWNER, SCOPES))
    sandbox.state.inject_token_faults(count=2, status=503)

    creds.refresh(Request())

    assert creds.valid
    assert sandbox.state.counts["token"] == 3


def test_a_dropped_connection_is_a_transport_error(sandbox: SandboxServer) -> None:
    creds = credentials(sandbox, sandbox.state.mint_grant(DEMO_CLIENT_ID, OWNER, SCOPES))
    sandbox.state.inject_token_faults(count=1, status=0)

    with pytest.raises(TransportError):
        creds.refresh(Request())


# -- google_auth_oauthlib.flow.Flow -------------------------------------------------------


@pytest.fixture
def insecure_transport_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    # oauthlib refuses http:// unless told; Google widens `email` to its URL, so relax scopes.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.setenv("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")


def make_flow(sandbox: SandboxServer, client_secret: str = DEMO_CLIENT_SECRET) -> Flow:
    config = {
        "web": {
            "client_id": DEMO_CLIENT_ID,
            "client_secret": client_secret,
            "auth_uri": sandbox.env["GOOGLE_OAUTH_AUTH_URI"],
            "token_uri": sandbox.env["GOOGLE_OAUTH_TOKEN_URI"],
            "redirect_uris": list(DEMO_REDIRECT_URIS),
        }
    }
    return Flow.from_client_config(
        config, scopes=list(SCOPES), redirect_uri=REDIRECT_URI, autogenerate_code_verifier=True
    )


def consent(sandbox: SandboxServer, flow: Flow) -> str:
    """Open the Flow's consent URL (auto-approved); return the code Google sends back."""
    sandbox.state.auto_approve = True
    url, state = flow.authorization_url(prompt="consent", login_hint=OWNER)
    assert "code_challenge_method=S256" in url
    response = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
    assert response.status_code == 302, response.text
    query = redirect_query(response)
    assert query["state"] == state
    code: str = query["code"]
    return code


def fetch_error(flow: Flow, code: str) -> Any:
    with pytest.raises(oauth_errors.OAuth2Error) as caught:
        flow.fetch_token(code=code)
    return caught.value


@pytest.mark.usefixtures("insecure_transport_allowed")
def test_flow_completes_a_pkce_code_exchange(sandbox: SandboxServer) -> None:
    flow = make_flow(sandbox)

    flow.fetch_token(code=consent(sandbox, flow))

    creds = flow.credentials
    assert creds.token.startswith("ya29.")
    assert creds.refresh_token.startswith("1//")
    claims = id_token.verify_token(
        creds.id_token, Request(), audience=DEMO_CLIENT_ID, certs_url=sandbox.url + CERTS_PATH
    )
    assert claims["iss"] == "https://accounts.google.com"
    assert (claims["email"], claims["email_verified"]) == (OWNER, True)
    creds.refresh(Request())
    assert creds.valid


@pytest.mark.usefixtures("insecure_transport_allowed")
def test_flow_with_a_wrong_verifier(sandbox: SandboxServer) -> None:
    flow = make_flow(sandbox)
    code = consent(sandbox, flow)
    flow.code_verifier = "w" * 64

    error = fetch_error(flow, code)

    assert isinstance(error, oauth_errors.InvalidGrantError)
    assert error.description == "Invalid code verifier."


@pytest.mark.usefixtures("insecure_transport_allowed")
def test_flow_with_a_reused_code(sandbox: SandboxServer) -> None:
    flow = make_flow(sandbox)
    code = consent(sandbox, flow)
    flow.fetch_token(code=code)

    error = fetch_error(flow, code)

    assert isinstance(error, oauth_errors.InvalidGrantError)
    assert error.description == "Bad Request"


@pytest.mark.usefixtures("insecure_transport_allowed")
def test_flow_with_a_wrong_redirect_uri(sandbox: SandboxServer) -> None:
    flow = make_flow(sandbox)
    code = consent(sandbox, flow)
    flow.redirect_uri = DEMO_REDIRECT_URIS[1]

    error = fetch_error(flow, code)

    assert error.error == "redirect_uri_mismatch"


@pytest.mark.usefixtures("insecure_transport_allowed")
def test_flow_with_a_wrong_client_secret(sandbox: SandboxServer) -> None:
    flow = make_flow(sandbox, client_secret="GOCSPX-wrong")

    error = fetch_error(flow, consent(sandbox, flow))

    assert isinstance(error, oauth_errors.InvalidClientError)
    assert error.description == "Unauthorized"


# -- Google's grant semantics, as the libraries see them ------------------------------------


@pytest.mark.parametrize("subtype", ["invalid_rapt", "rapt_required"])
def test_reauthentication_hides_its_subtype_behind_credentials_refresh(
    sandbox: SandboxServer, subtype: str
) -> None:
    refresh_token = sandbox.state.mint_grant(DEMO_CLIENT_ID, OWNER, SCOPES)
    sandbox.state.require_reauth(DEMO_CLIENT_ID, OWNER, subtype)

    # Credentials.refresh (reauth refresh off by default) drops Google's answer...
    error = refresh_error(credentials(sandbox, refresh_token))
    assert error.args == (
        "Reauthentication is needed. Please run `gcloud auth application-default login` to "
        "reauthenticate.",
    )
    assert error.retryable is False
    # ...which the token endpoint call underneath sees whole.
    with pytest.raises(RefreshError) as caught:
        google.oauth2._client.refresh_grant(
            Request(),
            sandbox.env["GOOGLE_OAUTH_TOKEN_URI"],
            refresh_token,
            DEMO_CLIENT_ID,
            DEMO_CLIENT_SECRET,
        )
    assert caught.value.args[0] == f"invalid_grant: reauth related error ({subtype})"
    assert caught.value.args[1]["error_subtype"] == subtype


def test_time_limited_access_reaches_the_token_but_not_the_credentials(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.setenv("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")
    sandbox.state.time_limited_access = 86400
    flow = make_flow(sandbox)

    token = flow.fetch_token(code=consent(sandbox, flow))

    assert token["refresh_token_expires_in"] == 86400
    creds = flow.credentials
    assert "refresh_token_expires_in" not in creds.to_json()
    assert creds.expiry is not None and creds.expiry < dt.datetime.now() + dt.timedelta(hours=2)
    creds.refresh(Request())
    sandbox.state.clock = lambda: time.time() + 86400
    assert refresh_error(creds).args[1]["error"] == "invalid_grant"


def test_a_testing_apps_expired_refresh_token_is_a_plain_invalid_grant(
    sandbox: SandboxServer,
) -> None:
    sandbox.state.register_client(
        "testing-app", "testing-secret", [REDIRECT_URI], publishing_status="testing"
    )
    creds = credentials(
        sandbox,
        sandbox.state.mint_grant("testing-app", OWNER, SCOPES),
        client_id="testing-app",
        client_secret="testing-secret",
    )
    creds.refresh(Request())
    sandbox.state.clock = lambda: time.time() + TESTING_GRANT_LIFETIME

    assert refresh_error(creds).args[0] == "invalid_grant: Token has been expired or revoked."


FULL_SCOPES = ["openid", EMAIL_SCOPE, BUSINESS_SCOPE]


def unticked_flow(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Flow:
    """A Flow asking for the scopes by their full names, whose consent unticks the Business
    scope."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    sandbox.state.unticked_scopes = [BUSINESS_SCOPE]
    flow = make_flow(sandbox)
    flow.oauth2session.scope = FULL_SCOPES
    return flow


def test_oauthlib_raises_on_a_partial_grant_unless_told_to_relax(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = unticked_flow(sandbox, monkeypatch)

    with pytest.raises(Warning) as caught:
        flow.fetch_token(code=consent(sandbox, flow))

    assert str(caught.value).startswith("Scope has changed from")
    # oauthlib hangs the granted scopes on the Warning it raises.
    assert set(vars(caught.value)["new_scope"]) == {"openid", EMAIL_SCOPE}


def test_relaxed_oauthlib_keeps_a_partial_grant_and_only_granted_scopes_tell(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = unticked_flow(sandbox, monkeypatch)
    monkeypatch.setenv("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")

    flow.fetch_token(code=consent(sandbox, flow))

    creds = flow.credentials
    assert set(creds.granted_scopes) == {"openid", EMAIL_SCOPE}
    # `scopes` stays what was asked for, and a refresh asks for it all again: the token
    # endpoint refuses a scope the grant lacks.
    assert BUSINESS_SCOPE in creds.scopes
    assert refresh_error(creds).args[1]["error"] == "invalid_scope"
