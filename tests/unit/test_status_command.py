"""`google-token-operator status`: rows read from objects, a table and JSON (pure)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from google_token_operator.commands.status_command import (
    branch_row,
    client_row,
    next_refresh_in,
    render_table,
    time_left,
    to_json,
)

NOW = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


def client(name: str = "acme", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "reviews",
            "annotations": {"google-token-operator.dev/refresh-requested-at": "r2"},
        },
        "spec": {},
        "status": {
            "conditions": [
                {"type": "Authorized", "status": "True", "reason": "Authorized"},
                {"type": "Ready", "status": "True", "reason": "TokenValid", "message": "ok"},
            ],
            "account": {"email": "owner@example.com"},
            "expiresAt": "2026-01-05T09:42:10Z",
            "nextRefreshTime": "2026-01-05T09:21:00Z",
            "tokenSecretName": "acme-google-token",
            "handledRequests": {"refresh": "r1"},
            **status,
        },
    }


def branch() -> dict[str, Any]:
    return {
        "metadata": {"name": "downtown", "namespace": "reviews"},
        "spec": {"clientRef": {"name": "acme"}, "accountId": "123", "locationId": "456"},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "LocationVerified"}],
            "location": {"title": "Downtown Bakery"},
            "tokenSecretName": "downtown-google-token",
        },
    }


def test_a_client_row_has_the_account_time_left_and_open_requests() -> None:
    row = client_row(client(), NOW)
    assert row.account == "owner@example.com"
    assert row.seconds_left == 42 * 60 + 10
    assert row.open_requests == ("refresh",)
    assert (row.ready, row.reason) == ("True", "TokenValid")


def test_a_client_not_authorized_shows_the_authorized_reason_and_url() -> None:
    body = client(
        conditions=[
            {"type": "Authorized", "status": "False", "reason": "RevokedOnRequest", "message": "m"},
            {"type": "Ready", "status": "False", "reason": "RevokedOnRequest"},
        ],
        authorization={"url": "https://consent"},
        expiresAt=None,
    )
    row = client_row(body, NOW)
    assert row.reason == "RevokedOnRequest"
    assert row.seconds_left is None
    assert row.consent_url == "https://consent"


def test_durations_read_like_kubectl() -> None:
    assert time_left(None) == "-"
    assert time_left(-5) == "expired"
    assert time_left(42) == "42s"
    assert time_left(42 * 60 + 10) == "42m"
    assert time_left(3 * 3600 + 60) == "3h01m"
    assert next_refresh_in("2026-01-05T09:21:00Z", NOW) == "in 21m"
    assert next_refresh_in("2026-01-05T08:00:00Z", NOW) == "due"
    assert next_refresh_in("garbage", NOW) == "-"


def test_the_table_lines_up_and_names_namespaces_with_all() -> None:
    lines = render_table([client_row(client(), NOW)], [branch_row(branch())], NOW, True)
    assert lines[0] == "GoogleClients:"
    header, row = lines[1], lines[2]
    assert header.split() == [
        "NAMESPACE", "NAME", "ACCOUNT", "READY", "REASON", "TIME", "LEFT", "NEXT", "REFRESH",
        "LAST", "FAILURE",
    ]  # fmt: skip
    assert row.split() == [
        "reviews", "acme", "owner@example.com", "True", "TokenValid", "42m", "in", "21m", "-",
    ]  # fmt: skip
    assert header.index("ACCOUNT") == row.index("owner@example.com")
    assert "  acme: waiting for refresh" in lines
    assert "Branches:" in lines
    assert lines[-1].split() == [
        "reviews", "downtown", "acme", "Downtown", "Bakery", "True", "LocationVerified",
        "downtown-google-token",
    ]  # fmt: skip
    assert render_table([], [], NOW, False) == ["No GoogleClients or Branches found."]


def test_json_is_plain_and_round_trips() -> None:
    document = to_json([client_row(client(), NOW)], [branch_row(branch())], NOW)
    parsed = json.loads(json.dumps(document))
    assert parsed["clients"][0]["secondsLeft"] == 2530
    assert parsed["clients"][0]["openRequests"] == ["refresh"]
    assert parsed["branches"][0]["location"] == "accounts/123/locations/456"
    assert parsed["time"] == "2026-01-05T09:00:00Z"
