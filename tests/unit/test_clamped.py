"""The values that used to crash a pass: each gives a clamped value or a named refusal."""

from __future__ import annotations

import datetime as dt

import pytest
from aiohttp.test_utils import TestClient, TestServer
from fakes import operator_with_fakes

from google_token_operator import policy, tokens
from google_token_operator.consent.api import ConsentService, create_app
from google_token_operator.consent.apikey import KeyCheck
from google_token_operator.consent.contract import CONSENT_API_PATH, KEY_FIELD, KEY_SECRET
from google_token_operator.google_types import (
    MAX_RETRY_AFTER,
    ErrorKind,
    GoogleError,
    parse_retry_after,
    token_from_response,
)
from google_token_operator.timeutil import EARLIEST, LATEST, parse_rfc3339

NOW = dt.datetime(2026, 12, 6, 12, tzinfo=dt.UTC)


@pytest.mark.parametrize("attempt", [47, 48, 1000, 10**6, 10**100])
def test_backoff_at_any_attempt_is_the_cap(attempt: int) -> None:
    assert policy.backoff_delay(attempt, None, 1.0) == policy.BACKOFF_CAP
    assert policy.backoff_delay(attempt, None, 0.0) == policy.BACKOFF_CAP / 2


def test_backoff_with_another_base_and_cap_is_capped_too() -> None:
    second, minute = dt.timedelta(seconds=1), dt.timedelta(minutes=1)
    assert policy.backoff_delay(10**6, None, 1.0, second, minute) == minute
    assert policy.backoff_delay(3, None, 1.0, second, minute) == 4 * second


@pytest.mark.parametrize(
    ("text", "clamped"),
    [
        ("9999-12-31T23:59:59Z", LATEST),
        ("9999-12-31T23:59:59-23:59", LATEST),  # no UTC form at all
        ("0001-01-01T00:00:00Z", EARLIEST),
        ("0001-01-01T00:00:00+01:00", EARLIEST),  # no UTC form at all
    ],
)
def test_timestamps_at_pythons_limits_are_clamped(text: str, clamped: dt.datetime) -> None:
    moment = parse_rfc3339(text)
    assert moment == clamped
    assert moment + dt.timedelta(days=3650) > moment - dt.timedelta(days=3650)


@pytest.mark.parametrize(
    ("issued_at", "expiry"),
    [
        ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z"),
        ("2026-12-06T12:00:00Z", "9999-12-31T23:59:59Z"),
        ("0001-01-01T00:00:00Z", "2026-12-06T13:00:00Z"),
        ("0001-01-01T00:00:00+01:00", "0001-01-01T01:00:00+01:00"),
    ],
)
def test_a_stored_access_token_with_times_out_of_reason_is_dropped(
    issued_at: str, expiry: str
) -> None:
    plain = {"refresh_token": "1//r", "access_token": "ya29.t", "issued_at": issued_at,
             "expiry": expiry}  # fmt: skip
    record = tokens.record_from_data(tokens.encode_data(plain))
    assert record is not None
    assert record.refresh_token == "1//r"  # kept: a refresh replaces the access token
    assert record.access is None


@pytest.mark.parametrize("value", ["²", "²³", "1²", "٣٠", "\uff11\uff10"])
def test_retry_after_in_other_digits_is_ignored(value: str) -> None:
    assert parse_retry_after(value, NOW) is None


def test_retry_after_huge_is_clamped() -> None:
    assert parse_retry_after("9" * 60, NOW) == MAX_RETRY_AFTER
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", NOW) == MAX_RETRY_AFTER


@pytest.mark.parametrize("expires_in", ["²", "3599²", "٣٥٩٩"])
def test_a_lifetime_in_other_digits_is_an_invalid_answer(expires_in: str) -> None:
    with pytest.raises(GoogleError) as raised:
        token_from_response({"access_token": "ya29.t", "expires_in": expires_in}, (), NOW)
    assert raised.value.kind is ErrorKind.INVALID_ANSWER


@pytest.mark.parametrize("presented", ["clé", "ключ", "\u2603" * 40, "the-kéy"])
async def test_a_non_ascii_consent_api_key_is_refused_with_401(presented: str) -> None:
    op, kube, _, _, _ = operator_with_fakes()
    kube.put_secret("gto", KEY_SECRET, {KEY_FIELD: "the-key"})
    app = create_app(ConsentService(op), KeyCheck(kube, "gto"))  # type: ignore[arg-type]
    async with TestClient(TestServer(app)) as client:
        refused = await client.post(
            CONSENT_API_PATH, json={}, headers={"Authorization": f"Bearer {presented}"}
        )
        accepted = await client.post(
            CONSENT_API_PATH, json={}, headers={"Authorization": "Bearer the-key"}
        )
        assert refused.status == 401
        assert accepted.status == 200  # the right key still gets an answer
