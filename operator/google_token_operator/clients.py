"""GoogleClient decisions: pure functions from what was observed (and the clock) to what to do.

A pass (`reconcile.client_pass.ClientPass`) gathers a `ClientObservation`, asks `next_action`,
performs it, folds the outcome back in with `after_refresh`, and writes what
`desired_conditions` and `desired_status` return.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from collections.abc import Mapping
from typing import Any

from . import blockers, grant_checks, policy
from .conditions import AUTHORIZED, READY, STICKY_CONSENT_REASONS, Condition, Reason, find_condition
from .consent_state.pending import PublishedConsent
from .day2 import Request
from .google_types import (
    MAX_RETRY_AFTER,
    ClientCredentials,
    ErrorKind,
    GoogleError,
    Userinfo,
    clean,
)
from .naming import default_token_secret_name
from .secret_template import NO_TEMPLATE, SecretTemplate, TemplateProblem, parse_secret_template
from .settings import DEFAULT_SCOPES, Settings
from .timeutil import format_rfc3339, parse_duration, parse_rfc3339
from .tokens import AccessToken, TokenRecord


class SpecError(ValueError):
    """A spec the operator cannot work with; the message names the field and the fix."""


@dataclasses.dataclass(frozen=True)
class ClientSpec:
    name: str
    namespace: str
    uid: str
    generation: int
    credentials_secret: str
    scopes: tuple[str, ...]
    redirect_uri: str
    login_hint: str
    token_secret_name: str
    refresh_before: dt.timedelta
    revoke_on_delete: bool
    # Who may consent: these e-mails and/or accounts of this Workspace domain (empty: anyone).
    allowed_accounts: tuple[str, ...] = ()
    hosted_domain: str = ""
    # A bad template holds back the consumer Secret's writes only, never a refresh.
    secret_template: SecretTemplate | TemplateProblem = NO_TEMPLATE


# The CRD bounds these too; the operator checks again so an object admitted by an older CRD
# (or written around it) cannot reach a computation it was not made for.
MAX_REFRESH_BEFORE = dt.timedelta(hours=24)
# The longest wait after a failed refresh: a back-off, or a Retry-After, at its cap.
LONGEST_RETRY_WAIT = max(policy.BACKOFF_CAP, MAX_RETRY_AFTER)
SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def parse_client_spec(body: Mapping[str, Any], settings: Settings) -> ClientSpec:
    meta = body.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    spec = body.get("spec") or {}
    name = str(meta.get("name", ""))
    if not isinstance(spec, Mapping):
        raise SpecError("spec must be an object; see `kubectl explain googleclient.spec`")
    credentials = _field(spec, "credentialsSecretRef", Mapping, {}).get("name")
    if not isinstance(credentials, str) or not SECRET_NAME.match(credentials):
        raise SpecError(
            "spec.credentialsSecretRef.name is required: name the Secret with keys "
            "client_id and client_secret"
        )
    refresh_before = dt.timedelta(0)
    if spec.get("refreshBefore"):
        try:
            refresh_before = parse_duration(str(spec["refreshBefore"]))
        except ValueError as error:
            raise SpecError(f"spec.refreshBefore: {error}") from None
        if refresh_before > MAX_REFRESH_BEFORE:
            raise SpecError("spec.refreshBefore must be at most 24h (tokens live one hour)")
    scopes = _field(spec, "scopes", list, list(DEFAULT_SCOPES)) or list(DEFAULT_SCOPES)
    if not all(isinstance(scope, str) and 0 < len(scope) <= 512 for scope in scopes):
        raise SpecError("spec.scopes must be a list of scope strings")
    token_secret = _field(spec, "tokenSecretName", str, "") or default_token_secret_name(name)
    if not SECRET_NAME.match(token_secret) or len(token_secret) > 253:
        raise SpecError(f"spec.tokenSecretName {token_secret[:80]!r} is not a valid Secret name")
    allowed = _field(spec, "allowedAccounts", list, [])
    if not all(isinstance(item, str) and "@" in item for item in allowed):
        raise SpecError("spec.allowedAccounts must list e-mail addresses")
    return ClientSpec(
        name=name,
        namespace=str(meta.get("namespace", "")),
        uid=str(meta.get("uid", "")),
        generation=_generation(meta.get("generation")),
        credentials_secret=credentials,
        scopes=tuple(scopes),
        redirect_uri=_field(spec, "redirectURI", str, "") or settings.callback_url,
        login_hint=_field(spec, "loginHint", str, ""),
        token_secret_name=token_secret,
        refresh_before=refresh_before,
        revoke_on_delete=_field(spec, "revokeOnDelete", bool, False),
        allowed_accounts=tuple(sorted({item.strip().lower() for item in allowed})),
        hosted_domain=_field(spec, "hostedDomain", str, "").strip().lower(),
        secret_template=parse_secret_template(spec, "GoogleClient"),
    )


def _field(spec: Mapping[str, Any], key: str, kind: type, default: Any) -> Any:
    value = spec.get(key)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise SpecError(f"spec.{key} has the wrong type; see `kubectl explain googleclient.spec`")
    return value


def _generation(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def generation_of(body: Mapping[str, Any]) -> int:
    meta = body.get("metadata")
    return _generation(meta.get("generation") if isinstance(meta, Mapping) else None)


def account_refusal(spec: ClientSpec, account: Userinfo) -> str:
    """Why `account` may not consent for this client; empty when it may (pure).

    `loginHint` is only a hint to Google's account chooser: the pinning is what binds.
    """
    if not spec.allowed_accounts and not spec.hosted_domain:
        return ""
    if not account.email or not account.email_verified:
        return "Google did not confirm the account's e-mail address"
    if account.email in spec.allowed_accounts:
        return ""
    if spec.hosted_domain and account.hosted_domain == spec.hosted_domain:
        return ""
    allowed = [
        *spec.allowed_accounts,
        *([f"any account of {spec.hosted_domain}"] if spec.hosted_domain else []),
    ]
    return f"{account.email} may not consent for this GoogleClient (allowed: {', '.join(allowed)})"


@dataclasses.dataclass(frozen=True)
class CredentialsProblem:
    reason: str
    message: str


def credentials_from_secret(
    secret_name: str, data: Mapping[str, str] | None
) -> ClientCredentials | CredentialsProblem:
    """Credentials from the decoded data of the credentials Secret (None: no such Secret)."""
    if data is None:
        return CredentialsProblem(
            Reason.CREDENTIALS_SECRET_NOT_FOUND,
            f"Secret {secret_name!r} not found; create it in this namespace with the keys "
            "client_id and client_secret of a Google 'Web application' OAuth client",
        )
    missing = [key for key in ("client_id", "client_secret") if not data.get(key, "").strip()]
    if missing:
        return CredentialsProblem(
            Reason.CREDENTIALS_SECRET_INVALID,
            f"Secret {secret_name!r} has no {' and no '.join(missing)}; add the key(s) from "
            "the OAuth client in the Google console",
        )
    return ClientCredentials(data["client_id"].strip(), data["client_secret"].strip())


@dataclasses.dataclass(frozen=True)
class FailureState:
    """Refresh failures, as remembered in status (so they survive a restart)."""

    attempts: int = 0
    retry_at: dt.datetime | None = None
    # Set after invalid_client: the credentials Secret version that failed. No retry until
    # the Secret changes.
    rejected_credentials_version: str = ""
    last_error: str = ""
    # The last failure was an answer from Google the operator could not use (not an error).
    invalid_answer: bool = False


def failure_from_status(status: Mapping[str, Any]) -> FailureState:
    """The failure state as the last pass stored it; unreadable values count as none."""
    attempts = _small_int(status.get("failedRefreshAttempts"))
    ready = find_condition(status.get("conditions"), READY)
    rejected = ""
    # Google rejected the OAuth client at a refresh, or at a consent's code exchange.
    consent_failure = blockers.consent_failure_of(status)
    if ready.get("reason") == Reason.CLIENT_CREDENTIALS_INVALID or (
        consent_failure is not None and consent_failure.reason == Reason.CLIENT_CREDENTIALS_INVALID
    ):
        rejected = str(status.get("credentialsResourceVersion") or "")
    retry_at = None
    if attempts and status.get("nextRefreshTime"):
        try:
            retry_at = parse_rfc3339(str(status["nextRefreshTime"]))
        except ValueError:
            retry_at = None
    return FailureState(
        attempts,
        retry_at,
        rejected,
        clean(str(status.get("lastFailure") or "")[:LAST_FAILURE_LIMIT], LAST_FAILURE_LIMIT),
        invalid_answer=ready.get("reason") == Reason.GOOGLE_ANSWER_INVALID,
    )


# status.lastFailure is read back bounded (a status may have been written around the operator).
LAST_FAILURE_LIMIT = 1000


def _small_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


@dataclasses.dataclass(frozen=True)
class ClientObservation:
    spec: ClientSpec
    credentials: ClientCredentials | CredentialsProblem
    credentials_version: str
    record: TokenRecord | None
    failure: FailureState
    previous_authorized_reason: str
    # Set when the private Secret's name is taken by a Secret that is not this client's.
    private_conflict: str = ""
    # Day-2 requests not handled yet, and when a requested refresh may call Google.
    requests: frozenset[Request] = frozenset()
    requested_refresh_at: dt.datetime | None = None
    # The scopes the last consent lacked (ScopesNotGranted; only scopes of spec.scopes).
    consent_missing_scopes: tuple[str, ...] = ()

    def with_record(self, record: TokenRecord | None) -> ClientObservation:
        return dataclasses.replace(self, record=record)


class ActionKind(enum.Enum):
    WAIT = "wait"  # nothing to do until `until`
    REFRESH = "refresh"  # call Google now
    CONSENT = "consent"  # no usable refresh token: publish a consent URL
    BLOCKED = "blocked"  # a person must fix something first


@dataclasses.dataclass(frozen=True)
class Action:
    kind: ActionKind
    until: dt.datetime | None = None
    reason: str = ""
    message: str = ""


def newer_record(stored: TokenRecord | None, remembered: TokenRecord | None) -> TokenRecord | None:
    """The stored record, unless this process holds a newer token of the same grant (one it
    could not store yet): a token Google issued is never thrown away for another call."""
    if stored is None or remembered is None or remembered.access is None:
        return stored
    if remembered.refresh_token != stored.refresh_token:
        return stored  # another grant since (a new consent), or revoked: the Secret is right
    if stored.access is None or remembered.access.expires_at > stored.access.expires_at:
        return dataclasses.replace(stored, access=remembered.access, scopes=remembered.scopes)
    return stored


def jitter_for(observation: ClientObservation) -> float:
    access = observation.record.access if observation.record else None
    expiry = format_rfc3339(access.expires_at) if access else ""
    return policy.jitter_fraction(observation.spec.uid, expiry)


def refresh_due(observation: ClientObservation) -> dt.datetime | None:
    record = observation.record
    if record is None or record.access is None:
        return None
    times = policy.TokenTimes(record.access.issued_at, record.access.expires_at)
    return policy.refresh_due_at(times, observation.spec.refresh_before, jitter_for(observation))


def next_action(observation: ClientObservation, now: dt.datetime) -> Action:
    if observation.private_conflict:
        return Action(
            ActionKind.BLOCKED, reason=Reason.SECRET_CONFLICT, message=observation.private_conflict
        )
    credentials = observation.credentials
    if isinstance(credentials, CredentialsProblem):
        return Action(ActionKind.BLOCKED, reason=credentials.reason, message=credentials.message)
    failure = observation.failure
    # Before any consent: with credentials Google rejected, a consent would fail again.
    rejected = failure.rejected_credentials_version
    if rejected and rejected == observation.credentials_version:
        return Action(
            ActionKind.BLOCKED,
            reason=Reason.CLIENT_CREDENTIALS_INVALID,
            message=failure.last_error,
        )
    record = observation.record
    if record is None or not record.refresh_token:
        return Action(ActionKind.CONSENT, reason=consent_reason(observation))
    if record.client_id and record.client_id != credentials.client_id:
        return Action(
            ActionKind.CONSENT,
            reason=Reason.CONSENT_REQUIRED,
            message="the credentials Secret now names another OAuth client; consent again",
        )
    unusable = unusable_grant(record, now)
    if unusable is not None:
        return unusable
    if failure.attempts and failure.retry_at and now < failure.retry_at:
        # A retry time from status is no later than a back-off could have set it.
        return Action(ActionKind.WAIT, until=min(failure.retry_at, now + LONGEST_RETRY_WAIT))
    due = refresh_due(observation)
    if Request.REFRESH in observation.requests:
        allowed = observation.requested_refresh_at
        due = allowed if due is None or allowed is None else min(due, allowed)
    if due is None or now >= due:
        return Action(ActionKind.REFRESH)
    if record.grant_expires_at is not None:
        due = min(due, record.grant_expires_at)  # say at once that the grant ended
    return Action(ActionKind.WAIT, until=due)


def unusable_grant(record: TokenRecord, now: dt.datetime) -> Action | None:
    """A stored grant no refresh may use until a new consent (Google would refuse it, or
    its tokens would lack what the spec asks for); None when it may be used."""
    if record.reauthentication_required:
        return Action(
            ActionKind.CONSENT,
            reason=Reason.REAUTHENTICATION_REQUIRED,
            message=grant_checks.REAUTHENTICATION_ADVICE,
        )
    if record.missing_scopes:
        return Action(
            ActionKind.CONSENT,
            reason=Reason.SCOPES_NOT_GRANTED,
            message=grant_checks.scopes_not_granted_message(record.missing_scopes),
        )
    if record.grant_expires_at is not None and grant_checks.grant_ended(
        record.grant_expires_at, now
    ):
        return Action(
            ActionKind.CONSENT,
            reason=Reason.AUTHORIZATION_REVOKED,
            message=grant_checks.grant_ended_message(record.grant_expires_at),
        )
    return None


def consent_reason(observation: ClientObservation) -> str:
    if observation.previous_authorized_reason in STICKY_CONSENT_REASONS:
        return observation.previous_authorized_reason
    if observation.record is not None and observation.record.access is not None:
        return Reason.AUTHORIZATION_REVOKED
    return Reason.CONSENT_REQUIRED


def after_revoke(observation: ClientObservation) -> ClientObservation:
    """Revoked on request: no token is kept, and consent is needed again."""
    return dataclasses.replace(
        observation,
        record=None,
        failure=FailureState(),
        previous_authorized_reason=Reason.REVOKED_ON_REQUEST,
    )


def tokens_withdrawn(action: Action) -> bool:
    """The grant was revoked on request: consumer Secrets must not exist (their access token
    died with the grant at Google), until a new consent."""
    return action.kind is ActionKind.CONSENT and action.reason == Reason.REVOKED_ON_REQUEST


def handled_requests(
    observation: ClientObservation,
    action: Action,
    *,
    refreshed: bool,
    revoked: bool,
    reconsented: bool,
) -> frozenset[Request]:
    """The open requests this pass handled. A refresh request is handled by a refresh (made
    on request or due anyway), or at once when no refresh is possible (the conditions say
    why); a re-consent once the new grant is stored."""
    done = set()
    if revoked:
        done.add(Request.REVOKE)
    if refreshed or action.kind in (ActionKind.CONSENT, ActionKind.BLOCKED):
        done.add(Request.REFRESH)
    if reconsented:
        done.add(Request.REAUTHORIZE)
    return frozenset(done) & observation.requests


def grant_to_retire(previous: TokenRecord | None, stored: TokenRecord) -> str:
    """The refresh token of the grant a new consent replaced, when it should be revoked at
    Google; empty when not. Google revokes per account and OAuth client, so a grant of the
    same account and client as the new one is left alone (revoking it would kill the new
    one), as is one whose account is not known."""
    if previous is None or not previous.refresh_token:
        return ""
    if previous.refresh_token == stored.refresh_token:
        return ""
    if not previous.account_email or not stored.account_email:
        return ""
    if previous.account_email == stored.account_email and previous.client_id == stored.client_id:
        return ""
    return previous.refresh_token


@dataclasses.dataclass(frozen=True)
class RefreshOutcome:
    """What came back from Google, folded into the observation by `after_refresh`."""

    access: AccessToken | None = None
    new_refresh_token: str | None = None
    error: GoogleError | None = None
    # How long the grant lasts from now, when Google says (time-limited access).
    grant_lifetime: dt.timedelta | None = None


def after_refresh(
    observation: ClientObservation, outcome: RefreshOutcome, now: dt.datetime
) -> ClientObservation:
    record = observation.record
    assert record is not None  # only refreshed when a record with a refresh token exists
    if outcome.access is not None:
        missing = grant_checks.missing_scopes(observation.spec.scopes, outcome.access.scopes)
        if missing:
            # The person removed a permission: this token is not served; the refresh token
            # stays for the new consent to replace.
            updated = dataclasses.replace(record, missing_scopes=missing)
        else:
            updated = record.with_access(outcome.access, outcome.new_refresh_token)
        expires = grant_checks.grant_expiry(now, outcome.grant_lifetime)
        if expires is not None:
            updated = dataclasses.replace(updated, grant_expires_at=expires)
        return dataclasses.replace(observation, record=updated, failure=FailureState())
    error = outcome.error
    assert error is not None
    if error.needs_reauthentication:
        return dataclasses.replace(
            observation,
            record=dataclasses.replace(record, reauthentication_required=True),
            failure=FailureState(),
        )
    if error.kind is ErrorKind.INVALID_GRANT:
        note = grant_checks.invalid_grant_note(
            error, record.consented_at, record.grant_expires_at, now
        )
        return dataclasses.replace(
            observation,
            record=record.revoked(),
            # Kept in status.lastFailure, so the Authorized message says it after a restart.
            failure=FailureState(last_error=note),
            previous_authorized_reason=Reason.AUTHORIZATION_REVOKED,
        )
    if error.kind is ErrorKind.INVALID_CLIENT:
        return dataclasses.replace(
            observation,
            failure=FailureState(
                rejected_credentials_version=observation.credentials_version,
                last_error=(
                    f"Google rejected the OAuth client ({error}); fix client_id/client_secret "
                    f"in Secret {observation.spec.credentials_secret!r}; the operator retries "
                    "when that Secret changes"
                ),
            ),
        )
    attempts = observation.failure.attempts + 1
    delay = policy.backoff_delay(
        attempts, error.retry_after, policy.jitter_fraction(observation.spec.uid, str(attempts))
    )
    return dataclasses.replace(
        observation,
        failure=FailureState(
            attempts=attempts,
            retry_at=now + delay,
            last_error=str(error),
            invalid_answer=error.kind is ErrorKind.INVALID_ANSWER,
        ),
    )


def operator_namespace_missing(namespace: str) -> str:
    """Why no consent URL could be published: the pending consent has nowhere to live."""
    return (
        f"no consent URL: the operator keeps pending consent in namespace {namespace!r}, which "
        f"does not exist; create it (kubectl create namespace {namespace}) or set "
        "OPERATOR_NAMESPACE to an existing namespace"
    )


def desired_conditions(
    observation: ClientObservation,
    action: Action,
    now: dt.datetime,
    consent_problem: str = "",
    consumer_conflict: str = "",
) -> list[Condition]:
    """The Authorized and Ready conditions; `consent_problem` says why no URL was published,
    `consumer_conflict` why the consumer Secret could not be written."""
    record = observation.record
    access = record.access if record else None
    token_valid = access is not None and access.expires_at > now
    expiry_note = f" until {format_rfc3339(access.expires_at)}" if access else ""
    email = record.account_email if record else ""

    if action.kind is ActionKind.CONSENT:
        reason = action.reason
        authorized = Condition(
            AUTHORIZED, False, reason, _consent_message(reason, action, observation)
        )
    elif record is not None and record.refresh_token:
        who = f" by {email}" if email else ""
        message = f"Consent given{who}"
        if Request.REAUTHORIZE in observation.requests:
            message += (
                "; a new consent was requested: open status.authorization.url (this grant "
                "keeps working until the new one is stored)"
            )
        authorized = Condition(AUTHORIZED, True, Reason.AUTHORIZED, message)
    else:
        authorized = Condition(
            AUTHORIZED, False, Reason.CONSENT_REQUIRED, _consent_message("", action, observation)
        )

    failure = observation.failure
    template = observation.spec.secret_template
    template_note = template.note if isinstance(template, SecretTemplate) else ""
    if action.kind is ActionKind.BLOCKED:
        ready = Condition(READY, False, action.reason, action.message)
    elif consumer_conflict:  # what must be fixed first, consent or not
        ready = Condition(READY, False, Reason.SECRET_CONFLICT, consumer_conflict)
    elif isinstance(template, TemplateProblem) and action.kind is not ActionKind.CONSENT:
        ready = Condition(
            READY,
            False,
            Reason.SECRET_TEMPLATE_INVALID,
            f"{template.message}; the consumer Secret keeps what it held before",
        )
    elif action.kind is ActionKind.CONSENT and consent_problem:
        ready = Condition(READY, False, Reason.OPERATOR_NAMESPACE_MISSING, consent_problem)
    elif action.kind is ActionKind.CONSENT:
        message = authorized.message
        if token_valid:
            message += f"; the last token stays in the Secret{expiry_note}"
        ready = Condition(READY, False, action.reason, message)
    elif failure.attempts and token_valid:
        ready = Condition(
            READY,
            True,
            Reason.GOOGLE_ANSWER_INVALID if failure.invalid_answer else Reason.REFRESH_DELAYED,
            f"refresh failed {failure.attempts} time(s) ({failure.last_error}); the current "
            f"token is valid{expiry_note}; next try at "
            f"{format_rfc3339(failure.retry_at or now)}",
        )
    elif failure.attempts:
        ready = Condition(
            READY,
            False,
            Reason.GOOGLE_ANSWER_INVALID if failure.invalid_answer else Reason.REFRESH_FAILING,
            f"refresh failed {failure.attempts} time(s) ({failure.last_error}) and the token "
            f"expired; next try at {format_rfc3339(failure.retry_at or now)}",
        )
    elif token_valid:
        warning = grant_checks.grant_end_warning(record.grant_expires_at if record else None, now)
        ready = Condition(
            READY,
            True,
            Reason.TOKEN_VALID,
            f"access token valid{expiry_note}{template_note}{warning}",
        )
    else:
        ready = Condition(READY, False, Reason.REFRESH_DELAYED, "waiting for the first token")
    url_published = action.kind is ActionKind.CONSENT and not consent_problem
    if not authorized.status and not url_published and ready.reason in blockers.FIX_REASONS:
        # Point at what comes first, not at a consent URL that does not exist.
        authorized = dataclasses.replace(
            authorized,
            message=f"no consent URL until this is fixed ({ready.reason}): {ready.message}",
        )
    return [authorized, ready]


def _consent_message(reason: str, action: Action, observation: ClientObservation) -> str:
    if action.message:
        return action.message + "; open status.authorization.url to consent"
    if reason == Reason.AUTHORIZATION_REVOKED:
        # What the invalid_grant said (kept in status.lastFailure, cleaned and bounded).
        note = observation.failure.last_error or (
            "Google says the grant was revoked or expired (invalid_grant)"
        )
        return f"{note}; open status.authorization.url to consent again"
    if reason == Reason.SCOPES_NOT_GRANTED:
        missing = observation.consent_missing_scopes
        return grant_checks.scopes_not_granted_message(missing) + " (the partial grant was revoked)"
    if reason == Reason.REAUTHENTICATION_REQUIRED:
        return grant_checks.REAUTHENTICATION_ADVICE
    if reason == Reason.REVOKED_ON_REQUEST:
        return (
            "the grant was revoked at Google on request (annotation "
            f"{Request.REVOKE.annotation}) and the token Secrets were deleted; open "
            "status.authorization.url to consent again"
        )
    if reason == Reason.CONSENT_DENIED:
        return "consent was denied at Google; open status.authorization.url to try again"
    if reason == Reason.ACCOUNT_NOT_ALLOWED:
        return (
            "the last consent came from an account that spec.allowedAccounts/spec.hostedDomain "
            "do not allow (nothing was stored, the grant was revoked); open "
            "status.authorization.url and consent with an allowed account"
        )
    return "no Google account has consented yet; open status.authorization.url to consent"


def desired_status(
    observation: ClientObservation,
    action: Action,
    pending: PublishedConsent | None,
    handled: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Status fields other than conditions (merged by the caller); None removes a field."""
    record = observation.record
    access = record.access if record else None
    failure = observation.failure
    next_refresh: dt.datetime | None = None
    if action.kind is ActionKind.WAIT:
        next_refresh = action.until
    return {
        "observedGeneration": observation.spec.generation,
        "account": {"email": record.account_email} if record and record.account_email else None,
        "authorization": pending.to_status() if pending is not None else None,
        "expiresAt": format_rfc3339(access.expires_at) if access else None,
        "grantExpiresAt": (
            format_rfc3339(record.grant_expires_at) if record and record.grant_expires_at else None
        ),
        "lastRefreshTime": format_rfc3339(access.issued_at) if access else None,
        "nextRefreshTime": format_rfc3339(next_refresh) if next_refresh else None,
        "failedRefreshAttempts": failure.attempts,
        "lastFailure": failure.last_error or None,
        "credentialsResourceVersion": failure.rejected_credentials_version or None,
        "tokenSecretName": observation.spec.token_secret_name,
        "handledRequests": dict(handled) if handled else None,
    }


def status_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch turning `current` into `desired`; empty when nothing changed."""
    patch: dict[str, Any] = {}
    for key, value in desired.items():
        if value is None:
            if current.get(key) is not None:
                patch[key] = None
        elif current.get(key) != value:
            patch[key] = value
    return patch
