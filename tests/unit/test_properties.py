"""Every pure parser and decision meets arbitrary input (Hypothesis): it parses, or raises
its module's own typed error, never OverflowError, ValueError, TypeError, KeyError or
AttributeError. Deterministic (derandomize) and bounded, so `make unit` stays fast."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from google_token_operator import (
    branches,
    clients,
    day2,
    election,
    google_types,
    policy,
    tokens,
)
from google_token_operator.conditions import find_condition
from google_token_operator.consent_state import pending
from google_token_operator.settings import Settings
from google_token_operator.timeutil import (
    EARLIEST,
    LATEST,
    MAX_DURATION,
    TimeFormatError,
    format_rfc3339,
    parse_duration,
    parse_rfc3339,
)
from google_token_operator.wakeups import client_of

# The same examples on every run and machine (derandomize), no example database written.
settings.register_profile(
    "unit",
    derandomize=True,
    database=None,
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
bounded = settings(settings.get_profile("unit"))

SETTINGS = Settings(operator_namespace="gto")
NOW = dt.datetime(2026, 12, 6, 12, tzinfo=dt.UTC)

# Timestamps as hostile writers spell them: Python's limits, odd offsets, near-misses.
moments_text = st.one_of(
    st.datetimes(
        min_value=dt.datetime(1, 1, 2),
        max_value=dt.datetime(9999, 12, 30),
        timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-23, minutes=-59))]),
    ).map(lambda moment: moment.isoformat()),
    st.sampled_from(
        [
            "9999-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-23:59",
            "2026-12-06T12:00:00",
            "2026-02-30T00:00:00Z",
            "",
        ]
    ),
    st.text(max_size=40),
)
durations_text = st.one_of(
    st.from_regex(r"\A([0-9]{1,20}(\.[0-9]{1,5})?(ms|s|m|h)){1,4}\Z"),
    st.sampled_from(["²s", "\uff11h", "1e400h", "9" * 64 + "h", "-5m", "1h 30m"]),
    st.text(max_size=30),
)
# What a JSON body or a status may hold.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | moments_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def json_dict(*keys: str) -> st.SearchStrategy[dict[str, Any]]:
    """Objects whose keys are mostly the ones the parser looks for."""
    return st.dictionaries(st.sampled_from(keys) | st.text(max_size=8), json_values, max_size=8)


def body(spec: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A custom resource with any spec, status and metadata (the CRD's checks bypassed)."""
    metadata = st.fixed_dictionaries(
        {},
        optional={
            "name": st.text(max_size=20) | json_values,
            "namespace": st.text(max_size=20),
            "uid": st.text(max_size=20),
            "generation": json_values,
        },
    )
    return st.fixed_dictionaries(
        {}, optional={"metadata": metadata | json_values, "spec": spec, "status": json_values}
    )


# Timestamps and durations -------------------------------------------------------------------


@bounded
@given(moments_text)
def test_a_timestamp_parses_within_the_clamp_or_raises_time_format_error(text: str) -> None:
    try:
        moment = parse_rfc3339(text)
    except TimeFormatError:
        return
    assert moment.tzinfo is dt.UTC
    assert EARLIEST <= moment <= LATEST
    # Any duration the operator uses can be added and taken away without overflow.
    assert moment + MAX_DURATION > moment - MAX_DURATION
    assert parse_rfc3339(format_rfc3339(moment)) == moment.replace(microsecond=0)


@bounded
@given(durations_text)
def test_a_duration_parses_within_bounds_or_raises_time_format_error(text: str) -> None:
    try:
        duration = parse_duration(text)
    except TimeFormatError:
        return
    assert dt.timedelta(0) <= duration <= MAX_DURATION


# policy -------------------------------------------------------------------------------------

in_range = st.datetimes(
    min_value=EARLIEST.replace(tzinfo=None),
    max_value=LATEST.replace(tzinfo=None),
    timezones=st.just(dt.UTC),
)
durations = st.timedeltas(min_value=dt.timedelta(0), max_value=MAX_DURATION)
fractions = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


@bounded
@given(
    st.integers(min_value=-5, max_value=10**100),
    st.none() | st.timedeltas(min_value=dt.timedelta(0), max_value=google_types.MAX_RETRY_AFTER),
    fractions,
)
def test_backoff_is_bounded_for_any_attempt(
    attempt: int, retry_after: dt.timedelta | None, jitter: float
) -> None:
    delay = policy.backoff_delay(attempt, retry_after, jitter)
    assert policy.BACKOFF_BASE / 2 <= delay <= clients.LONGEST_RETRY_WAIT
    if retry_after is not None:
        assert delay >= retry_after


@bounded
@given(in_range, in_range, durations, fractions)
def test_the_refresh_is_due_within_the_token_life(
    issued: dt.datetime, expires: dt.datetime, refresh_before: dt.timedelta, jitter: float
) -> None:
    due = policy.refresh_due_at(policy.TokenTimes(issued, expires), refresh_before, jitter)
    if expires >= issued:
        assert issued <= due <= expires
    else:
        assert due == expires
    assert dt.timedelta(0) <= policy.promised_remaining(max(expires - issued, dt.timedelta(0)))


@bounded
@given(st.lists(st.text(max_size=20), max_size=3))
def test_jitter_is_a_fraction(seed: list[str]) -> None:
    assert 0.0 <= policy.jitter_fraction(*seed) < 1.0


# The private Secret ------------------------------------------------------------------------

TOKEN_KEYS = ("refresh_token", "access_token", "client_id", "scopes", "account_email",
              "token_type", "issued_at", "expiry")  # fmt: skip


def encoded(value: Any) -> Any:
    return base64.b64encode(value.encode()).decode() if isinstance(value, str) else value


secret_data = st.one_of(
    # Well-encoded values, times spelled anyhow.
    st.dictionaries(
        st.sampled_from(TOKEN_KEYS), (moments_text | st.text(max_size=20)).map(encoded)
    ),
    # Anything at all: not base64, not UTF-8, not even strings.
    st.dictionaries(st.sampled_from(TOKEN_KEYS) | st.text(max_size=8), json_values),
    st.dictionaries(
        st.sampled_from(TOKEN_KEYS),
        st.binary(max_size=12).map(lambda raw: base64.b64encode(raw).decode()),
    ),
)


@bounded
@given(secret_data)
def test_a_private_secret_gives_a_record_or_none(data: dict[str, Any]) -> None:
    record = tokens.record_from_data(data)
    if record is not None and record.access is not None:
        access = record.access
        assert EARLIEST <= access.issued_at < access.expires_at <= LATEST
        assert access.expires_at - access.issued_at <= tokens.MAX_LIFETIME
        # What it says survives the round trip through the Secret.
        assert tokens.record_from_data(tokens.record_to_data(record)) == record


@bounded
@given(secret_data)
def test_a_consent_secret_gives_a_pending_consent_or_none(data: dict[str, Any]) -> None:
    pending.pending_from_data(data)


@bounded
@given(json_values)
def test_a_published_consent_is_read_or_none(authorization: Any) -> None:
    published = pending.published_from_status(authorization)
    if published is not None:
        assert EARLIEST <= published.expires_at <= LATEST


# Specs and statuses ------------------------------------------------------------------------

CLIENT_SPEC_KEYS = ("credentialsSecretRef", "scopes", "redirectURI", "loginHint",
                    "tokenSecretName", "refreshBefore", "revokeOnDelete", "allowedAccounts",
                    "hostedDomain")  # fmt: skip
client_specs = st.one_of(
    json_dict(*CLIENT_SPEC_KEYS),
    st.fixed_dictionaries(
        {"credentialsSecretRef": st.just({"name": "acme-oauth"}), "refreshBefore": durations_text}
    ),
    json_values,
)


@bounded
@given(body(client_specs))
def test_a_client_spec_parses_or_raises_spec_error(resource: dict[str, Any]) -> None:
    try:
        spec = clients.parse_client_spec(resource, SETTINGS)
    except clients.SpecError:
        return
    assert dt.timedelta(0) <= spec.refresh_before <= clients.MAX_REFRESH_BEFORE


CLIENT_STATUS_KEYS = ("failedRefreshAttempts", "nextRefreshTime", "conditions", "lastFailure",
                      "credentialsResourceVersion")  # fmt: skip


@bounded
@given(json_dict(*CLIENT_STATUS_KEYS))
def test_a_client_status_gives_a_failure_state(status: dict[str, Any]) -> None:
    failure = clients.failure_from_status(status)
    assert failure.attempts >= 0
    if failure.retry_at is not None:
        assert EARLIEST <= failure.retry_at <= LATEST
    find_condition(status.get("conditions"), "Ready")


@bounded
@given(
    json_dict(*CLIENT_STATUS_KEYS),
    secret_data,
    st.timedeltas(min_value=dt.timedelta(0), max_value=clients.MAX_REFRESH_BEFORE),
    in_range,
    st.none() | st.timedeltas(min_value=dt.timedelta(0), max_value=google_types.MAX_RETRY_AFTER),
)
def test_the_client_decisions_take_any_stored_state(
    status: dict[str, Any],
    data: dict[str, Any],
    refresh_before: dt.timedelta,
    now: dt.datetime,
    retry_after: dt.timedelta | None,
) -> None:
    """From what a status and a private Secret may hold to the status written: no crash,
    whatever the failure count, the times or refreshBefore."""
    resource = {"metadata": {"name": "acme", "namespace": "team", "uid": "u"},
                "spec": {"credentialsSecretRef": {"name": "acme-oauth"}}}  # fmt: skip
    spec = clients.parse_client_spec(resource, SETTINGS)
    spec = dataclasses.replace(spec, refresh_before=refresh_before)
    observation = clients.ClientObservation(
        spec=spec,
        credentials=google_types.ClientCredentials("cid", "secret"),
        credentials_version="1",
        record=tokens.record_from_data(data),
        failure=clients.failure_from_status(status),
        previous_authorized_reason=str(find_condition(status.get("conditions"), "Authorized")),
    )
    action = clients.next_action(observation, now)
    if action.until is not None:
        assert EARLIEST <= action.until <= LATEST
    clients.desired_conditions(observation, action, now)
    clients.desired_status(observation, action, None)
    if action.kind is clients.ActionKind.REFRESH:
        failed = google_types.GoogleError(
            google_types.ErrorKind.RETRYABLE, 503, "unavailable", "", retry_after
        )
        after = clients.after_refresh(observation, clients.RefreshOutcome(error=failed), now)
        assert after.failure.retry_at is not None
        assert after.failure.retry_at <= now + clients.LONGEST_RETRY_WAIT


request_annotations = st.dictionaries(
    st.sampled_from([kind.annotation for kind in day2.Request]) | st.text(max_size=8),
    json_values,
    max_size=4,
)


@bounded
@given(request_annotations, json_values)
def test_requests_by_annotation_are_read_whatever_the_status_holds(
    annotations: dict[str, Any], handled: Any
) -> None:
    opened = day2.open_requests(annotations, handled)
    day2.acknowledged(handled, opened, frozenset(opened))


BRANCH_SPEC_KEYS = ("clientRef", "accountId", "locationId", "tokenSecretName")
branch_specs = st.one_of(
    json_dict(*BRANCH_SPEC_KEYS),
    st.fixed_dictionaries(
        {
            "clientRef": st.just({"name": "acme"}),
            "accountId": st.from_regex(r"\A[0-9²]{1,31}\Z"),
            "locationId": st.just("111"),
        }
    ),
    json_values,
)


@bounded
@given(body(branch_specs))
def test_a_branch_spec_parses_or_raises_branch_spec_error(resource: dict[str, Any]) -> None:
    try:
        branches.parse_branch_spec(resource)
    except branches.BranchSpecError:
        return


location_statuses = st.one_of(
    st.fixed_dictionaries(
        {
            "location": st.fixed_dictionaries(
                {"checkedAt": moments_text | json_values},
                optional={"checkedGeneration": json_values, "accessible": json_values},
            )
        }
    ),
    json_dict("location"),
)


@bounded
@given(body(branch_specs))
def test_the_client_a_branch_names_is_read_from_any_branch(resource: dict[str, Any]) -> None:
    if isinstance(resource.get("metadata"), dict):
        client_of(resource)


@bounded
@given(location_statuses, in_range, durations, st.integers(min_value=0, max_value=10**6))
def test_a_branch_status_gives_a_location_check_and_a_due_decision(
    status: dict[str, Any], now: dt.datetime, interval: dt.timedelta, generation: int
) -> None:
    check = branches.location_from_status(status)
    if check is None:
        return
    assert EARLIEST <= check.checked_at <= LATEST
    spec = branches.BranchSpec(
        "b", "team", "uid", generation, "acme", branches.BranchLocation("1", "2"), "b-token"
    )
    due = branches.location_check_due(spec, check, now, interval)
    # A check stamped further ahead than the interval is never trusted.
    if check.checked_at - now >= interval:
        assert due


# Google's answers --------------------------------------------------------------------------

TOKEN_ANSWER_KEYS = ("access_token", "expires_in", "token_type", "scope", "refresh_token")
token_answers = st.one_of(
    json_dict(*TOKEN_ANSWER_KEYS),
    st.fixed_dictionaries(
        {
            "access_token": st.just("ya29.token"),
            "expires_in": st.integers(min_value=-(10**20), max_value=10**20)
            | st.from_regex(r"\A[0-9²³¹]{1,25}\Z"),
        },
        optional={"scope": json_values, "token_type": json_values},
    ),
)


@bounded
@given(token_answers, in_range)
def test_a_token_answer_gives_a_token_or_an_invalid_answer(
    answer: dict[str, Any], now: dt.datetime
) -> None:
    try:
        access = google_types.token_from_response(answer, ("openid",), now)
    except google_types.GoogleError as error:
        assert error.kind is google_types.ErrorKind.INVALID_ANSWER
        return
    lifetime = access.expires_at - access.issued_at
    assert google_types.MIN_LIFETIME <= lifetime <= tokens.MAX_LIFETIME


@bounded
@given(json_dict(*TOKEN_ANSWER_KEYS, "email", "email_verified", "hd", "title"))
def test_other_google_answers_are_read_or_refused(answer: dict[str, Any]) -> None:
    try:
        google_types.refresh_token_from_response(answer)
    except google_types.GoogleError as error:
        assert error.kind is google_types.ErrorKind.INVALID_ANSWER
    google_types.userinfo_from_response(answer)
    google_types.location_title(answer)


retry_after_values = st.one_of(
    st.none(),
    st.from_regex(r"\A\s*[0-9²³¹٣]{1,70}\s*\Z"),
    st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)).map(
        lambda moment: moment.strftime("%a, %d %b %Y %H:%M:%S GMT")
    ),
    st.sampled_from(["²", "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0001 00:00:00 -0000"]),
    st.text(max_size=40),
)


@bounded
@given(retry_after_values, in_range)
def test_retry_after_is_ignored_or_clamped(value: str | None, now: dt.datetime) -> None:
    delay = google_types.parse_retry_after(value, now)
    if delay is not None:
        assert dt.timedelta(0) <= delay <= google_types.MAX_RETRY_AFTER


# The Lease ---------------------------------------------------------------------------------


@bounded
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "spec": json_dict("leaseDurationSeconds", "holderIdentity", "renewTime")
            | st.fixed_dictionaries({"leaseDurationSeconds": st.integers()}),
            "metadata": json_dict("resourceVersion"),
        },
    )
)
def test_a_lease_gives_a_record_with_a_bounded_duration(lease: dict[str, Any]) -> None:
    record = election.lease_record(lease)
    assert dt.timedelta(0) <= record.duration <= MAX_DURATION
