"""GoogleClient decisions, with the clock passed in: no cluster, no network."""

import dataclasses
import datetime as dt

import pytest

from google_token_operator import clients
from google_token_operator.clients import (
    ActionKind,
    ClientObservation,
    CredentialsProblem,
    FailureState,
    Reason,
    RefreshOutcome,
)
from google_token_operator.google_types import ClientCredentials, ErrorKind, GoogleError
from google_token_operator.settings import Settings
from google_token_operator.tokens import AccessToken, TokenRecord

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
CREDS = ClientCredentials("client-1.apps.googleusercontent.com", "not-a-real-secret")


def body(**spec: object) -> dict[str, object]:
    return {
        "metadata": {"name": "acme", "namespace": "team", "uid": "uid-1", "generation": 3},
        "spec": {"credentialsSecretRef": {"name": "acme-oauth"}, **spec},
    }


def access(issued: dt.datetime = T0, lifetime: int = 3600) -> AccessToken:
    return AccessToken(
        "ya29.value", "Bearer", ("scope",), issued, issued + dt.timedelta(seconds=lifetime)
    )


def record(refresh_token: str = "1//r", token: AccessToken | None = None) -> TokenRecord:
    return TokenRecord(refresh_token, CREDS.client_id, ("scope",), "owner@example.com", token)


def observe(
    rec: TokenRecord | None = None,
    credentials: ClientCredentials | CredentialsProblem = CREDS,
    failure: FailureState | None = None,
    previous: str = "",
    **spec: object,
) -> ClientObservation:
    return ClientObservation(
        spec=clients.parse_client_spec(body(**spec), Settings()),
        credentials=credentials,
        credentials_version="41",
        record=rec,
        failure=failure or FailureState(),
        previous_authorized_reason=previous,
    )


def test_spec_defaults_follow_the_design():
    spec = clients.parse_client_spec(body(), Settings(callback_url="https://cb.example/cb"))
    assert spec.token_secret_name == "acme-google-token"
    assert spec.scopes == ("https://www.googleapis.com/auth/business.manage",)
    assert spec.redirect_uri == "https://cb.example/cb"
    assert spec.refresh_before == dt.timedelta(0)


def test_bad_refresh_before_names_the_field():
    with pytest.raises(clients.SpecError, match=r"spec\.refreshBefore"):
        clients.parse_client_spec(body(refreshBefore="soon"), Settings())


def test_missing_credentials_secret_blocks_with_its_reason():
    problem = clients.credentials_from_secret("acme-oauth", None)
    assert isinstance(problem, CredentialsProblem)
    action = clients.next_action(observe(record(token=access()), problem), T0)
    assert action.kind is ActionKind.BLOCKED
    assert action.reason == Reason.CREDENTIALS_SECRET_NOT_FOUND
    assert "acme-oauth" in action.message


def test_credentials_secret_without_a_key_names_the_key():
    problem = clients.credentials_from_secret("acme-oauth", {"client_id": "x"})
    assert isinstance(problem, CredentialsProblem)
    assert problem.reason == Reason.CREDENTIALS_SECRET_INVALID
    assert "client_secret" in problem.message


def test_no_record_means_consent_required():
    action = clients.next_action(observe(None), T0)
    assert (action.kind, action.reason) == (ActionKind.CONSENT, Reason.CONSENT_REQUIRED)


def test_fresh_token_waits_until_the_policy_says_so():
    observation = observe(record(token=access()))
    action = clients.next_action(observation, T0 + dt.timedelta(minutes=5))
    assert action.kind is ActionKind.WAIT
    assert action.until == clients.refresh_due(observation)
    assert T0 + dt.timedelta(minutes=39) <= action.until <= T0 + dt.timedelta(minutes=40)


def test_token_in_its_refresh_window_is_refreshed():
    action = clients.next_action(observe(record(token=access())), T0 + dt.timedelta(minutes=41))
    assert action.kind is ActionKind.REFRESH


def test_record_without_access_token_is_refreshed_at_once():
    assert clients.next_action(observe(record()), T0).kind is ActionKind.REFRESH


def test_refresh_token_of_another_oauth_client_needs_consent():
    other = ClientCredentials("other-client", "s")
    action = clients.next_action(observe(record(token=access()), other), T0)
    assert action.kind is ActionKind.CONSENT
    assert "another OAuth client" in action.message


def test_backoff_is_respected():
    failure = FailureState(attempts=2, retry_at=T0 + dt.timedelta(seconds=8))
    observation = observe(record(token=access(lifetime=60)), failure=failure)
    assert (
        clients.next_action(observation, T0 + dt.timedelta(seconds=50)).kind is ActionKind.REFRESH
    )
    early = clients.next_action(observation, T0 + dt.timedelta(seconds=1))
    assert (early.kind, early.until) == (ActionKind.WAIT, failure.retry_at)


def error(kind: ErrorKind, status: int, retry_after: int | None = None) -> GoogleError:
    return GoogleError(
        kind,
        status,
        kind.value,
        "d",
        dt.timedelta(seconds=retry_after) if retry_after is not None else None,
    )


def test_success_resets_failures_and_keeps_refresh_token():
    observation = observe(
        record(token=access()), failure=FailureState(attempts=3), scopes=["scope"]
    )
    new = access(issued=T0 + dt.timedelta(minutes=41))
    after = clients.after_refresh(observation, RefreshOutcome(access=new), T0)
    assert after.failure == FailureState()
    assert after.record is not None
    assert after.record.access == new
    assert after.record.refresh_token == "1//r"


def test_rotated_refresh_token_is_kept():
    observation = observe(record(token=access()), scopes=["scope"])
    outcome = RefreshOutcome(access=access(), new_refresh_token="1//new")
    after = clients.after_refresh(observation, outcome, T0)
    assert after.record is not None and after.record.refresh_token == "1//new"


def test_invalid_grant_drops_the_refresh_token_and_keeps_the_access_token():
    observation = observe(record(token=access()))
    outcome = RefreshOutcome(error=error(ErrorKind.INVALID_GRANT, 400))
    after = clients.after_refresh(observation, outcome, T0)
    assert after.record is not None
    assert after.record.refresh_token == ""
    assert after.record.access == access()
    action = clients.next_action(after, T0)
    assert (action.kind, action.reason) == (ActionKind.CONSENT, Reason.AUTHORIZATION_REVOKED)
    conditions = {c.type: c for c in clients.desired_conditions(after, action, T0)}
    assert conditions["Authorized"].reason == Reason.AUTHORIZATION_REVOKED
    assert not conditions["Authorized"].status
    assert "stays in the Secret" in conditions["Ready"].message


def test_revoked_stays_revoked_after_the_access_token_expires():
    # After the token expired the record may be gone from memory; the reason must not
    # silently turn into ConsentRequired.
    after = observe(record(refresh_token=""), previous=Reason.AUTHORIZATION_REVOKED)
    assert clients.next_action(after, T0).reason == Reason.AUTHORIZATION_REVOKED


def test_invalid_client_blocks_until_the_credentials_secret_changes():
    observation = observe(record(token=access()))
    outcome = RefreshOutcome(error=error(ErrorKind.INVALID_CLIENT, 401))
    after = clients.after_refresh(observation, outcome, T0)
    action = clients.next_action(after, T0 + dt.timedelta(hours=1))
    assert (action.kind, action.reason) == (ActionKind.BLOCKED, Reason.CLIENT_CREDENTIALS_INVALID)
    assert "acme-oauth" in action.message
    changed = after.__class__(**{**after.__dict__, "credentials_version": "42"})
    assert clients.next_action(changed, T0 + dt.timedelta(hours=1)).kind is ActionKind.REFRESH


def test_retryable_failure_backs_off_and_stays_ready_while_the_token_is_valid():
    observation = observe(record(token=access()))
    now = T0 + dt.timedelta(minutes=41)
    outcome = RefreshOutcome(error=error(ErrorKind.RETRYABLE, 503, retry_after=7))
    after = clients.after_refresh(observation, outcome, now)
    assert after.failure.attempts == 1
    assert after.failure.retry_at is not None
    assert after.failure.retry_at >= now + dt.timedelta(seconds=7)
    action = clients.next_action(after, now)
    assert action.kind is ActionKind.WAIT
    ready = clients.desired_conditions(after, action, now)[1]
    assert (ready.status, ready.reason) == (True, Reason.REFRESH_DELAYED)
    again = clients.after_refresh(after, outcome, after.failure.retry_at)
    assert again.failure.attempts == 2


def test_failing_with_an_expired_token_is_not_ready():
    failure = FailureState(attempts=4, retry_at=T0 + dt.timedelta(hours=2), last_error="HTTP 503")
    observation = observe(record(token=access()), failure=failure)
    now = T0 + dt.timedelta(hours=1, minutes=1)
    ready = clients.desired_conditions(observation, clients.next_action(observation, now), now)[1]
    assert (ready.status, ready.reason) == (False, Reason.REFRESH_FAILING)


def test_status_lists_times_and_patch_is_empty_when_nothing_changed():
    observation = observe(record(token=access()))
    action = clients.next_action(observation, T0)
    status = clients.desired_status(observation, action, None)
    assert status["expiresAt"] == "2026-01-01T13:00:00Z"
    assert status["lastRefreshTime"] == "2026-01-01T12:00:00Z"
    assert status["nextRefreshTime"] is not None
    assert status["account"] == {"email": "owner@example.com"}
    stored = {k: v for k, v in status.items() if v is not None}
    assert clients.status_patch(stored, status) == {}
    assert clients.status_patch({**stored, "authorization": {"url": "x"}}, status) == {
        "authorization": None
    }


def test_failure_state_survives_a_restart_through_status():
    status = {
        "failedRefreshAttempts": 2,
        "nextRefreshTime": "2026-01-01T12:00:08Z",
        "credentialsResourceVersion": "41",
        "conditions": [
            {"type": "Ready", "status": "False", "reason": Reason.CLIENT_CREDENTIALS_INVALID}
        ],
    }
    failure = clients.failure_from_status(status)
    assert failure.attempts == 2
    assert failure.retry_at == T0 + dt.timedelta(seconds=8)
    assert failure.rejected_credentials_version == "41"


def test_a_consent_google_refused_the_client_for_blocks_until_the_secret_changes():
    """The consent API records invalid_client at the code exchange in status; the next pass
    publishes no URL (one would fail the same way) and says what to fix."""
    status = {
        "lastConsentFailure": {"reason": "ClientCredentialsInvalid", "time": "2026-01-01T12:00Z"},
        "credentialsResourceVersion": "41",
        "lastFailure": "Google answered HTTP 401 invalid_client: fix Secret 'acme-oauth'",
        "conditions": [{"type": "Ready", "status": "False", "reason": "ConsentRequired"}],
    }
    observation = observe(None, failure=clients.failure_from_status(status))
    action = clients.next_action(observation, T0)
    authorized, ready = clients.desired_conditions(observation, action, T0)

    assert (action.kind, action.reason) == (ActionKind.BLOCKED, Reason.CLIENT_CREDENTIALS_INVALID)
    assert (ready.reason, ready.message) == (Reason.CLIENT_CREDENTIALS_INVALID, action.message)
    assert authorized.message.startswith(
        "no consent URL until this is fixed (ClientCredentialsInvalid): Google answered HTTP 401"
    )
    assert "status.authorization.url" not in authorized.message
    changed = dataclasses.replace(observation, credentials_version="42")
    assert clients.next_action(changed, T0).kind is ActionKind.CONSENT


def test_without_a_consent_url_the_authorized_message_names_what_comes_first():
    problem = clients.credentials_from_secret("acme-oauth", None)
    assert isinstance(problem, CredentialsProblem)
    observation = observe(None, problem)
    missing = clients.desired_conditions(observation, clients.next_action(observation, T0), T0)
    nowhere = clients.desired_conditions(
        observe(None), clients.next_action(observe(None), T0), T0, "namespace 'gto' is missing"
    )

    assert missing[0].message.startswith(
        "no consent URL until this is fixed (CredentialsSecretNotFound): Secret 'acme-oauth'"
    )
    assert nowhere[0].message == (
        "no consent URL until this is fixed (OperatorNamespaceMissing): namespace 'gto' is missing"
    )
