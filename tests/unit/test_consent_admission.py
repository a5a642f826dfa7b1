"""The consent API's admission: states it issued pass free, anything else pays the bucket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from fakes import FakeKube

from google_token_operator import MANAGED_BY
from google_token_operator.consent import api
from google_token_operator.consent.admission import Admission, pending_expiry, pending_states
from google_token_operator.consent.apikey import Throttle
from google_token_operator.consent_state import pending as consent
from google_token_operator.consent_state.contract import CONSENT_API_PATH, ConsentAnswer, Outcome
from google_token_operator.naming import MANAGED_BY_LABEL, ROLE_CONSENT, ROLE_LABEL

NAMESPACE = "gto"
NOW = 1_800_000_000.0
KEY = "the-callback-key"


def consent_meta(state: str, expires: str = str(int(NOW) + 900), **labels: str) -> dict[str, Any]:
    """A consent Secret as the metadata-only watch shows it."""
    return {
        "metadata": {
            "name": consent.consent_secret_name(state),
            "namespace": NAMESPACE,
            "labels": {
                MANAGED_BY_LABEL: MANAGED_BY,
                ROLE_LABEL: ROLE_CONSENT,
                consent.EXPIRES_LABEL: expires,
                **labels,
            },
        }
    }


def admission(*pending: dict[str, Any], burst: int = 0) -> Admission:
    states = pending_states(FakeKube(), NAMESPACE)  # never run here
    for body in pending:
        states.apply("ADDED", body)
    return Admission(states, NAMESPACE, Throttle(rate=0.0, burst=burst), clock=lambda: NOW)


def test_a_pending_state_passes_with_the_bucket_empty_and_is_not_charged() -> None:
    gate = admission(consent_meta("issued"), burst=1)

    for _ in range(50):
        with gate.admit("issued") as admitted:
            assert admitted
    with gate.admit("made-up") as admitted:
        assert admitted  # the one token was still there
    with gate.admit("made-up-too") as admitted:
        assert not admitted


@pytest.mark.parametrize(
    "body",
    [
        consent_meta("s", **{consent.OUTCOME_LABEL: "exchanging"}),
        consent_meta("s", expires=str(int(NOW) - 1)),
        consent_meta("s", expires="²"),
        consent_meta("s", expires="soon"),
    ],
    ids=["spent", "expired", "superscript-expiry", "word-expiry"],
)
def test_a_spent_expired_or_unreadable_state_pays_like_garbage(body: dict[str, Any]) -> None:
    gate = admission(body)

    with gate.admit("s") as admitted:
        assert not admitted


def test_a_state_that_leaves_the_watch_is_no_longer_known() -> None:
    gate = admission(consent_meta("issued"))
    gate.states.apply("DELETED", consent_meta("issued"))

    with gate.admit("issued") as admitted:
        assert not admitted


def test_a_known_state_is_admitted_free_once_at_a_time() -> None:
    """Replaying one's own link while it is being completed pays like garbage."""
    gate = admission(consent_meta("issued"))

    with gate.admit("issued") as first:
        assert first
        with gate.admit("issued") as replay:
            assert not replay
    with gate.admit("issued") as again:
        assert again


def test_a_huge_expiry_is_read_without_a_huge_integer() -> None:
    assert pending_expiry(consent_meta("s", expires="9" * 5000)) == 999_999_999_999


class StubService:
    """Answers like ConsentService; counts what it was asked to complete."""

    def __init__(self) -> None:
        self.completed: list[str] = []

    async def complete(self, state: str, code: str, error: str) -> ConsentAnswer:
        self.completed.append(state)
        await asyncio.sleep(0)
        return ConsentAnswer(Outcome.INVALID_STATE, 400, "unknown")


class StubKeys:
    async def accepts(self, presented: str) -> bool:
        return presented == KEY


@pytest.fixture
async def consent_api() -> AsyncIterator[tuple[TestClient[Any, Any], StubService]]:
    service = StubService()
    gate = admission(consent_meta("issued"), burst=3)
    app = api.create_app(service, StubKeys(), admission=gate)  # type: ignore[arg-type]
    async with TestClient(TestServer(app)) as client:
        yield client, service


async def test_a_flood_of_unknown_states_does_not_turn_an_issued_one_away(
    consent_api: tuple[TestClient[Any, Any], StubService],
) -> None:
    client, service = consent_api
    headers = {"Authorization": f"Bearer {KEY}"}

    async def hand_over(state: str) -> int:
        body = {"state": state, "code": "c"}
        async with client.post(CONSENT_API_PATH, json=body, headers=headers) as response:
            return response.status

    flood = [await hand_over(f"made-up-{number}") for number in range(20)]
    issued = await hand_over("issued")

    assert flood.count(200) == 3 and flood.count(429) == 17
    assert issued == 200
    assert service.completed.count("issued") == 1
    assert len(service.completed) == 4  # the refused ones never reached a read
