import base64
import datetime as dt
import json

from google_token_operator import builders, conditions, tokens
from google_token_operator.conditions import Condition
from google_token_operator.naming import BranchLocation, Owner

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
ACCESS = tokens.AccessToken(
    "ya29.abc", "Bearer", ("openid", "https://x/business.manage"), T0, T0 + dt.timedelta(hours=1)
)
CLIENT = Owner("GoogleClient", "acme", "team", "uid-c")
BRANCH = Owner("Branch", "downtown", "team", "uid-b")


def decoded(secret: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_client_consumer_secret_has_exactly_the_designed_keys():
    secret = builders.consumer_secret(CLIENT, "acme-google-token", "acme", ACCESS)
    data = decoded(secret)
    assert set(data) == {"access_token", "expiry", "token_type", "scopes", "token.json"}
    assert data["expiry"] == "2026-01-01T13:00:00Z"
    assert data["scopes"] == "openid https://x/business.manage"
    assert json.loads(data["token.json"]) == {k: v for k, v in data.items() if k != "token.json"}
    assert secret["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "google-token-operator",
        "google-token-operator.dev/client": "acme",
        "google-token-operator.dev/role": "consumer",
    }
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "uid-c"


def test_branch_consumer_secret_adds_the_location():
    location = BranchLocation("123", "456")
    secret = builders.consumer_secret(BRANCH, "downtown-google-token", "acme", ACCESS, location)
    data = decoded(secret)
    assert data["location_name"] == "accounts/123/locations/456"
    assert (data["account_id"], data["location_id"]) == ("123", "456")
    assert "refresh_token" not in data and "client_secret" not in data
    assert secret["metadata"]["labels"]["google-token-operator.dev/branch"] == "downtown"
    assert json.loads(data["token.json"])["location_name"] == "accounts/123/locations/456"


def test_private_secret_round_trips_the_record():
    record = tokens.TokenRecord("1//r", "cid", ACCESS.scopes, "owner@example.com", ACCESS)
    secret = builders.private_secret(CLIENT, record)
    assert secret["metadata"]["name"] == "acme-google-oauth"
    assert tokens.record_from_data(secret["data"]) == record


def test_record_from_garbage_is_none():
    assert tokens.record_from_data({}) is None
    assert tokens.record_from_data({"refresh_token": "!!!not base64"}) is None


def test_content_hash_ignores_order_and_sees_changes():
    assert builders.content_hash({"a": "1", "b": "2"}) == builders.content_hash(
        {"b": "2", "a": "1"}
    )
    assert builders.content_hash({"a": "1"}) != builders.content_hash({"a": "2"})


def test_transition_time_moves_only_when_status_flips():
    first = conditions.merge_conditions([], [Condition("Ready", True, "TokenValid", "m")], 1, T0)
    later = T0 + dt.timedelta(minutes=5)
    same = conditions.merge_conditions(
        first, [Condition("Ready", True, "TokenValid", "m2")], 2, later
    )
    assert same[0]["lastTransitionTime"] == "2026-01-01T12:00:00Z"
    assert same[0]["observedGeneration"] == 2
    flipped = conditions.merge_conditions(
        same, [Condition("Ready", False, "RefreshFailing", "m")], 2, later
    )
    assert flipped[0]["lastTransitionTime"] == "2026-01-01T12:05:00Z"


def test_changed_reasons_are_the_transitions():
    before = conditions.merge_conditions([], [Condition("Ready", True, "TokenValid", "a")], 1, T0)
    message_only = conditions.merge_conditions(
        before, [Condition("Ready", True, "TokenValid", "b")], 1, T0
    )
    assert conditions.changed_reasons(before, message_only) == []
    reason = conditions.merge_conditions(
        before, [Condition("Ready", True, "RefreshDelayed", "b")], 1, T0
    )
    assert [c["reason"] for c in conditions.changed_reasons(before, reason)] == ["RefreshDelayed"]
