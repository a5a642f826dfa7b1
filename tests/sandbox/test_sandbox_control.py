"""The /_sandbox/ control API, for tests and demos whose sandbox runs in another process."""

from __future__ import annotations

from typing import Any

import requests

from devkit.servers import SandboxServer
from fixtures.sandbox import OWNER, SCOPES, TIMEOUT, approve, authorize, post_token
from google_token_sandbox import CONTROL_PREFIX
from google_token_sandbox.state import DEMO_CLIENT_ID


def control(sandbox: SandboxServer, path: str, body: Any = None) -> requests.Response:
    return requests.post(sandbox.url + CONTROL_PREFIX + path, json=body, timeout=TIMEOUT)


def refresh(sandbox: SandboxServer, refresh_token: str) -> requests.Response:
    return post_token(sandbox, grant_type="refresh_token", refresh_token=refresh_token)


def test_counts_and_reset(sandbox: SandboxServer) -> None:
    authorize(sandbox)
    counts_url = sandbox.url + CONTROL_PREFIX + "/counts"

    counts = requests.get(counts_url, timeout=TIMEOUT).json()
    assert (counts["auth"], counts["token"], counts["token.authorization_code"]) == (1, 1, 1)

    assert control(sandbox, "/counts/reset").status_code == 200
    assert set(requests.get(counts_url, timeout=TIMEOUT).json().values()) == {0}


def test_faults(sandbox: SandboxServer) -> None:
    refresh_token = sandbox.state.mint_grant(DEMO_CLIENT_ID, OWNER, SCOPES)
    body = {"endpoint": "token", "status": 503, "count": 2, "retry_after": 1}

    assert control(sandbox, "/faults", body).status_code == 200

    answers = [refresh(sandbox, refresh_token) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [503, 503, 200]
    assert answers[0].headers["Retry-After"] == "1"


def test_revoke_a_users_grants(sandbox: SandboxServer) -> None:
    refresh_token = authorize(sandbox, login_hint=OWNER)["refresh_token"]

    response = control(sandbox, "/revoke", {"client_id": DEMO_CLIENT_ID, "email": OWNER})

    assert response.json() == {"revoked": 1}
    assert refresh(sandbox, refresh_token).json()["error"] == "invalid_grant"


def test_break_and_restore_a_client_secret(sandbox: SandboxServer) -> None:
    refresh_token = sandbox.state.mint_grant(DEMO_CLIENT_ID, OWNER, SCOPES)

    control(sandbox, f"/clients/{DEMO_CLIENT_ID}/break-secret")
    broken = refresh(sandbox, refresh_token)
    control(sandbox, f"/clients/{DEMO_CLIENT_ID}/restore-secret")
    restored = refresh(sandbox, refresh_token)

    assert (broken.status_code, broken.json()["error"]) == (401, "invalid_client")
    assert restored.status_code == 200


def test_settings(sandbox: SandboxServer) -> None:
    response = control(sandbox, "/settings", {"token_lifetime": 60, "auto_approve": True})

    assert response.status_code == 200
    assert authorize(sandbox)["expires_in"] == 60


def test_mint_a_grant(sandbox: SandboxServer) -> None:
    body = {"client_id": DEMO_CLIENT_ID, "email": OWNER, "scopes": list(SCOPES)}

    refresh_token = control(sandbox, "/grants", body).json()["refresh_token"]

    assert refresh(sandbox, refresh_token).status_code == 200


def test_register_a_client(sandbox: SandboxServer) -> None:
    body = {
        "client_id": "ci-client",
        "client_secret": "ci-secret",
        "redirect_uris": ["http://127.0.0.1:18080/oauth2/callback"],
    }

    assert control(sandbox, "/clients", body).status_code == 200

    code = approve(
        sandbox, client_id="ci-client", redirect_uri="http://127.0.0.1:18080/oauth2/callback"
    )["code"]
    response = post_token(
        sandbox,
        grant_type="authorization_code",
        code=code,
        client_id="ci-client",
        client_secret="ci-secret",
        redirect_uri="http://127.0.0.1:18080/oauth2/callback",
    )
    assert response.status_code == 200, response.text


def test_bad_requests_say_what_is_wrong(sandbox: SandboxServer) -> None:
    for path, body, status, words in (
        ("/settings", {"token_lifetime": "soon"}, 400, "token_lifetime must be"),
        ("/settings", {"colour": "blue"}, 400, "unknown setting"),
        ("/faults", {"status": 503, "endpoint": "nowhere"}, 400, "unknown endpoint"),
        ("/faults", {"status": 302}, 400, "status must be"),
        ("/faults", {"status": 499}, 400, "status must be"),
        ("/faults", [1, 2], 400, "JSON object"),
        ("/revoke", {}, 400, "client_id is required"),
        ("/grants", {"client_id": DEMO_CLIENT_ID, "email": OWNER}, 400, "scopes must be"),
        ("/clients/nobody/break-secret", None, 404, "no OAuth client 'nobody'"),
    ):
        response = control(sandbox, path, body)
        assert response.status_code == status, (path, body)
        assert words in response.json()["error"], (path, body)
