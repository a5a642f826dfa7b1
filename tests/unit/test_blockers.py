"""What blocks a GoogleClient (blockers.blocker_of), read from its status as the operator
leaves it, and how a waiting command shows progress without a terminal."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest

from google_token_operator.blockers import (
    NOT_OBSERVED,
    ConsentFailure,
    Kind,
    blocker_of,
    consent_failure_of,
)
from google_token_operator.commands.waiting import PLAIN_PROGRESS_EVERY, Console, Step
from google_token_operator.metrics import Metrics


def status(authorized: tuple[str, str], ready: tuple[str, str]) -> dict[str, Any]:
    return {
        "conditions": [
            {
                "type": "Authorized",
                "status": authorized[0],
                "reason": authorized[1],
                "message": "a",
            },
            {"type": "Ready", "status": ready[0], "reason": ready[1], "message": "r"},
        ]
    }


@pytest.mark.parametrize(
    ("authorized", "ready", "kind", "reason"),
    [
        (("True", "Authorized"), ("True", "TokenValid"), Kind.NONE, "TokenValid"),
        # The bug of issue 19: a blocked client must not read as ConsentRequired.
        (("False", "ConsentRequired"), ("False", "CredentialsSecretNotFound"), Kind.FIX, None),
        (("False", "ConsentRequired"), ("False", "CredentialsSecretInvalid"), Kind.FIX, None),
        (("False", "ConsentRequired"), ("False", "OperatorNamespaceMissing"), Kind.FIX, None),
        (("False", "ConsentRequired"), ("False", "SecretConflict"), Kind.FIX, None),
        (("True", "Authorized"), ("False", "ClientCredentialsInvalid"), Kind.FIX, None),
        (("False", "ConsentDenied"), ("False", "ConsentDenied"), Kind.CONSENT, "ConsentDenied"),
        (("True", "Authorized"), ("False", "RefreshFailing"), Kind.WAITING, "RefreshFailing"),
    ],
)
def test_the_blocker_is_what_must_happen_first(
    authorized: tuple[str, str], ready: tuple[str, str], kind: Kind, reason: str | None
) -> None:
    blocker = blocker_of(status(authorized, ready))

    assert blocker.kind is kind
    assert blocker.reason == (reason or ready[1])
    assert blocker.blocked is (kind is not Kind.NONE)


@pytest.mark.parametrize("hostile", [None, {}, {"conditions": "x"}, {"conditions": [1, "a"]}, "s"])
def test_a_status_without_conditions_is_one_no_operator_reported_on(hostile: Any) -> None:
    blocker = blocker_of(hostile)

    assert (blocker.kind, blocker.reason) == (Kind.UNOBSERVED, NOT_OBSERVED)
    assert "is the operator running" in blocker.message


@pytest.mark.parametrize(
    "item",
    [None, "x", {}, {"reason": 3, "time": "2026-01-01T00:00:00Z"}, {"reason": "R", "time": "x"}],
)
def test_an_unreadable_consent_failure_is_none(item: Any) -> None:
    assert consent_failure_of({"lastConsentFailure": item}) is None


def test_a_consent_failure_reads_its_reason_and_time() -> None:
    failure = consent_failure_of(
        {"lastConsentFailure": {"reason": "ConsentDenied", "time": "2026-01-01T00:00:05Z"}}
    )
    assert failure == ConsentFailure(
        "ConsentDenied", dt.datetime(2026, 1, 1, 0, 0, 5, tzinfo=dt.UTC)
    )


def test_without_a_terminal_the_progress_is_a_plain_line_every_ten_seconds() -> None:
    clock = [0.0]
    out = io.StringIO()
    console = Console(out, monotonic=lambda: clock[0])
    for second in range(0, 25):
        clock[0] = float(second)
        console.show(Step(None, status_line=f"waiting for consent: {second}s elapsed"))

    assert PLAIN_PROGRESS_EVERY == 10.0
    assert out.getvalue().splitlines() == [
        "waiting for consent: 10s elapsed",
        "waiting for consent: 20s elapsed",
    ]


def test_the_blocked_metric_keeps_one_series_per_client_with_the_current_reason() -> None:
    metrics = Metrics()
    blocked = blocker_of(status(("False", "ConsentRequired"), ("False", "SecretConflict")))
    metrics.set_blocked("team", "acme", blocked)
    metrics.set_blocked("team", "acme", blocker_of(status(("True", "A"), ("True", "TokenValid"))))
    after_fix = metrics.registry.get_sample_value
    name = "google_token_operator_blocked_status"

    assert (
        after_fix(name, {"namespace": "team", "name": "acme", "reason": "SecretConflict"}) is None
    )
    assert after_fix(name, {"namespace": "team", "name": "acme", "reason": "TokenValid"}) == 0
    metrics.set_blocked("team", "acme", blocked)
    assert after_fix(name, {"namespace": "team", "name": "acme", "reason": "SecretConflict"}) == 1
    metrics.forget("GoogleClient", "team", "acme")
    assert (
        after_fix(name, {"namespace": "team", "name": "acme", "reason": "SecretConflict"}) is None
    )
