"""The values that used to crash a pass: each gives a clamped value or a named refusal."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from fakes import LOG, FakeKube, operator_with_fakes
from test_passes import (
    CLIENT_ID,
    NS,
    PRIVATE_LABELS,
    authorized,
    condition,
    owner_reference,
    run_pass,
    three_branches,
)

from google_token_operator import clients, policy, tokens
from google_token_operator.conditions import Reason
from google_token_operator.consent.admission import Admission, pending_states
from google_token_operator.consent.api import ConsentService, create_app
from google_token_operator.consent.apikey import KeyCheck, Throttle
from google_token_operator.consent_state.contract import CONSENT_API_PATH, KEY_FIELD, KEY_SECRET
from google_token_operator.google_types import (
    MAX_RETRY_AFTER,
    ErrorKind,
    GoogleError,
    parse_retry_after,
    token_from_response,
)
from google_token_operator.kube import KubeError
from google_token_operator.kube.informer import Informer
from google_token_operator.reconcile.client_pass import ClientMemory, ClientPass
from google_token_operator.reconcile.deletion import Janitor, delete_client
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


@pytest.mark.parametrize(
    ("issued_at", "expiry"),
    [
        ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z"),
        ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"),
    ],
)
async def test_a_private_secret_with_times_at_years_1_or_9999_is_refreshed(
    issued_at: str, expiry: str
) -> None:
    op, kube, google, clock, _ = operator_with_fakes()
    body = authorized(kube)
    hand_edited = {"refresh_token": "1//r", "client_id": CLIENT_ID, "scopes": "openid",
                   "access_token": "ya29.hand-edited", "issued_at": issued_at,
                   "expiry": expiry}  # fmt: skip
    owners = [owner_reference(body)]
    kube.put_secret(
        NS, "acme-google-oauth", hand_edited, labels=PRIVATE_LABELS, ownerReferences=owners
    )

    status = await run_pass(op, kube)

    assert google.calls["refresh"] == 1
    assert condition(status, "Ready") == ("True", Reason.TOKEN_VALID)
    served = kube.plain(NS, "acme-google-token") or {}
    assert served["access_token"] != "ya29.hand-edited"
    assert parse_rfc3339(served["expiry"]) <= clock() + tokens.MAX_LIFETIME


async def test_a_retry_time_from_the_far_future_waits_no_longer_than_a_back_off() -> None:
    op, kube, google, clock, _ = operator_with_fakes()
    authorized(kube)
    body = kube.resource("googleclients", NS, "acme")
    memory = ClientMemory(status={"failedRefreshAttempts": 3,
                                  "nextRefreshTime": "9999-12-31T23:59:59Z"})  # fmt: skip

    await ClientPass(op, body, LOG).run(memory)
    assert google.calls["refresh"] == 0  # it waits, as the status asks...
    clock.advance(seconds=clients.LONGEST_RETRY_WAIT.total_seconds() + 1)
    await ClientPass(op, body, LOG).run(memory)

    assert google.calls["refresh"] == 1  # ...but no longer than a back-off could have set
    assert condition(memory.status, "Ready") == ("True", Reason.TOKEN_VALID)


async def test_deleting_a_client_tells_every_branch_even_when_one_write_fails() -> None:
    op, kube, _, _, _ = operator_with_fakes()
    authorized(kube)
    three_branches(kube)
    body = kube.delete_resource("googleclients", NS, "acme")
    patch_status = kube.patch_status

    async def refuses_b_middle(
        plural: str, namespace: str, name: str, status: Any, resource_version: str
    ) -> str | None:
        if name == "b-middle":
            raise KubeError(503, "ServiceUnavailable")
        return await patch_status(plural, namespace, name, status, resource_version)

    kube.patch_status = refuses_b_middle  # type: ignore[method-assign]

    with pytest.raises(KubeError):  # kopf retries the deletion
        await delete_client(op, body, LOG)

    for name in ("a-first", "c-last"):
        status = kube.resource("branches", NS, name)["status"]
        assert condition(status, "Ready") == ("False", Reason.CLIENT_NOT_READY)


async def test_a_leftover_secret_that_cannot_be_deleted_does_not_keep_the_others() -> None:
    op, kube, _, _, _ = operator_with_fakes()
    gone = [{"apiVersion": "v1", "kind": "GoogleClient", "name": "gone", "uid": "uid-gone"}]
    for name in ("a-left", "b-stuck", "c-left"):
        kube.put_secret(NS, name, {"k": "v"}, labels=PRIVATE_LABELS, ownerReferences=gone)
    delete_secret = kube.delete_secret

    async def refuses_b_stuck(namespace: str, name: str, *, uid: str) -> bool:
        if name == "b-stuck":
            raise KubeError(500, "InternalError")
        return await delete_secret(namespace, name, uid=uid)

    kube.delete_secret = refuses_b_stuck  # type: ignore[method-assign]

    await Janitor(op, LOG).sweep()

    assert kube.plain(NS, "a-left") is None
    assert kube.plain(NS, "b-stuck") is not None  # left for the next sweep
    assert kube.plain(NS, "c-left") is None


def test_an_object_the_informer_fails_on_is_left_out_and_the_watch_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    told: list[str] = []

    def reduce(body: dict[str, Any]) -> str:
        if body["metadata"]["name"] == "bad-view":
            raise KeyError("what-the-object-holds")
        return str(body["metadata"]["name"])

    def on_change(key: tuple[str, str], old: Any, new: Any) -> None:
        if key[1] == "bad-listener":
            raise RuntimeError("what-the-object-holds")
        told.append(key[1])

    informer = Informer(FakeKube(), "things", ["/things"], reduce, on_change=on_change)
    for name in ("first", "bad-view", "bad-listener", "last"):
        informer.apply("ADDED", {"metadata": {"namespace": NS, "name": name}})

    assert [key[1] for key, _ in informer.items()] == ["first", "bad-listener", "last"]
    assert told == ["first", "last"]
    assert "bad-view" in caplog.text
    assert "what-the-object-holds" not in caplog.text


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


def no_pending_states() -> Admission:
    """The consent API's gate with no state issued (its watch is not run by these tests)."""
    return Admission(pending_states(FakeKube(), "gto"), "gto", Throttle())


@pytest.mark.parametrize("presented", ["clé", "ключ", "\u2603" * 40, "the-kéy"])
async def test_a_non_ascii_consent_api_key_is_refused_with_401(presented: str) -> None:
    op, kube, _, _, _ = operator_with_fakes()
    kube.put_secret("gto", KEY_SECRET, {KEY_FIELD: "the-key"})
    app = create_app(ConsentService(op), KeyCheck(kube, "gto"), admission=no_pending_states())
    async with TestClient(TestServer(app)) as client:
        refused = await client.post(
            CONSENT_API_PATH, json={}, headers={"Authorization": f"Bearer {presented}"}
        )
        accepted = await client.post(
            CONSENT_API_PATH, json={}, headers={"Authorization": "Bearer the-key"}
        )
        assert refused.status == 401
        assert accepted.status == 200  # the right key still gets an answer


async def test_a_state_with_a_lone_surrogate_is_an_invalid_state_not_a_500() -> None:
    op, kube, _, _, _ = operator_with_fakes()
    kube.put_secret("gto", KEY_SECRET, {KEY_FIELD: "the-key"})
    app = create_app(ConsentService(op), KeyCheck(kube, "gto"), admission=no_pending_states())
    async with TestClient(TestServer(app)) as client:
        answer = await client.post(
            CONSENT_API_PATH,
            json={"state": "st-\ud800", "code": "c"},
            headers={"Authorization": "Bearer the-key"},
        )
        assert answer.status == 200
        assert (await answer.json())["outcome"] == "invalid_state"
