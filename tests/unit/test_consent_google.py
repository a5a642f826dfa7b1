import base64
import dataclasses
import datetime as dt
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest

from google_token_operator import google_types as google
from google_token_operator.consent_state import pending as consent
from google_token_operator.google_types import ErrorKind

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def test_state_and_verifier_are_long_and_random():
    states = {consent.draw_fresh().state for _ in range(100)}
    assert len(states) == 100
    assert all(len(base64.urlsafe_b64decode(s + "==")) >= 16 for s in states)
    verifier = consent.draw_fresh().verifier
    assert 43 <= len(verifier) <= 128


def test_challenge_is_s256_of_the_verifier():
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 appendix B
    assert consent.code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_authorization_url_carries_everything_google_needs():
    url = consent.authorization_url(
        "https://accounts.example/auth",
        "cid",
        "https://cb.example/oauth2/callback",
        ("https://www.googleapis.com/auth/business.manage",),
        "the-state",
        "v" * 50,
        "owner@example.com",
    )
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.netloc == "accounts.example"
    assert query["scope"].split() == [
        "https://www.googleapis.com/auth/business.manage",
        "openid",
        "email",
    ]
    assert query["access_type"] == "offline"
    assert query["prompt"] == "consent"
    assert query["include_granted_scopes"] == "true"
    assert query["code_challenge_method"] == "S256"
    assert query["code_challenge"] == consent.code_challenge("v" * 50)
    assert query["login_hint"] == "owner@example.com"
    assert query["redirect_uri"] == "https://cb.example/oauth2/callback"


def test_state_secret_never_holds_the_raw_state():
    state = consent.draw_fresh().state
    pending = consent.PendingConsent(
        state_sha256=consent.state_hash(state),
        client_namespace="team",
        client_name="acme",
        client_uid="uid",
        code_verifier="v" * 50,
        redirect_uri="https://cb/cb",
        scopes=("openid",),
        fingerprint="f",
        expires_at=T0,
    )
    secret = consent.consent_secret("gto", state, pending)
    blob = repr(secret)
    assert state not in blob
    assert base64.b64encode(state.encode()).decode() not in blob
    assert secret["metadata"]["name"] == consent.consent_secret_name(state)
    assert (
        hashlib.sha256(state.encode())
        .hexdigest()
        .startswith(secret["metadata"]["name"].removeprefix("gto-consent-"))
    )
    assert consent.pending_from_data(secret["data"]) == pending


def test_fingerprint_changes_with_what_consent_depends_on():
    base = consent.consent_fingerprint("cid", "https://cb", ("a", "b"))
    assert base == consent.consent_fingerprint("cid", "https://cb", ("b", "a"))
    assert base != consent.consent_fingerprint("cid2", "https://cb", ("a", "b"))
    assert base != consent.consent_fingerprint("cid", "https://cb2", ("a", "b"))
    assert base != consent.consent_fingerprint("cid", "https://cb", ("a",))


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (
            400,
            {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
            ErrorKind.INVALID_GRANT,
        ),
        (
            400,
            {"error": "invalid_grant", "error_description": "Bad Request"},
            ErrorKind.INVALID_GRANT,
        ),
        (
            401,
            {"error": "invalid_client", "error_description": "Unauthorized"},
            ErrorKind.INVALID_CLIENT,
        ),
        (
            401,
            {"error": "unauthorized_client", "error_description": "Unauthorized"},
            ErrorKind.INVALID_CLIENT,
        ),
        (400, {"error": "redirect_uri_mismatch"}, ErrorKind.REDIRECT_URI_MISMATCH),
        (429, {"error": "rate_limit_exceeded"}, ErrorKind.RETRYABLE),
        (500, {"error": "server_error"}, ErrorKind.RETRYABLE),
        (503, {"error": "temporarily_unavailable"}, ErrorKind.RETRYABLE),
        (408, {}, ErrorKind.RETRYABLE),
        (400, {"error": "invalid_request"}, ErrorKind.OTHER),
    ],
)
def test_token_errors_are_classified_as_the_table_says(status: int, body: dict, kind: ErrorKind):
    assert google.classify_token_error(status, body) is kind


def test_retry_after_in_seconds_and_as_a_date():
    assert google.parse_retry_after("7", T0) == dt.timedelta(seconds=7)
    assert google.parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", T0) == dt.timedelta(seconds=30)
    assert google.parse_retry_after("soon", T0) is None
    assert google.parse_retry_after(None, T0) is None


def test_token_response_parsing_sorts_scopes():
    token = google.token_from_response(
        {"access_token": "ya29.x", "expires_in": 3599, "scope": "b a", "token_type": "Bearer"},
        ("a",),
        T0,
    )
    assert token.scopes == ("a", "b")
    assert token.expires_at == T0 + dt.timedelta(seconds=3599)


def _request() -> consent.ConsentRequest:
    return consent.ConsentRequest(
        "team", "acme", "uid", "cid", "https://cb/cb", ("openid",), "", "https://auth",
        dt.timedelta(minutes=15),
    )  # fmt: skip


def test_a_published_url_is_reused_while_unused_and_kept_while_its_code_is_exchanged() -> None:
    first = consent.plan_consent(
        _request(), None, consent.MISSING, T0, consent.Fresh("s1", "v" * 50), "gto"
    )
    assert first.write is not None and first.obsolete_secret == ""
    published = first.published
    later = T0 + dt.timedelta(minutes=1)
    fresh = consent.Fresh("s2", "w" * 50)

    reused = consent.plan_consent(_request(), published, consent.PENDING, later, fresh, "gto")
    assert reused == consent.ConsentPlan(published)
    exchanging = consent.plan_consent(
        _request(), published, consent.OUTCOME_EXCHANGING, later, fresh, "gto"
    )
    assert exchanging == consent.ConsentPlan(published)  # its outcome is still to come

    for spent in (consent.OUTCOME_DENIED, consent.OUTCOME_ACCOUNT_NOT_ALLOWED, "authorized"):
        renewed = consent.plan_consent(_request(), published, spent, later, fresh, "gto")
        assert renewed.published.url != published.url
        assert renewed.obsolete_secret == published.secret_name
    expired = consent.plan_consent(
        _request(), published, consent.OUTCOME_EXCHANGING, T0 + dt.timedelta(hours=1), fresh, "gto"
    )
    assert expired.obsolete_secret == published.secret_name
    moved = dataclasses.replace(_request(), redirect_uri="https://elsewhere/cb")
    assert consent.plan_consent(moved, published, consent.PENDING, later, fresh, "gto").write
