import dataclasses
import datetime as dt

from google_token_operator import branches
from google_token_operator.conditions import Reason
from google_token_operator.tokens import AccessToken

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
ACCESS = AccessToken("ya29.x", "Bearer", ("s",), T0, T0 + dt.timedelta(hours=1))
SPEC = branches.parse_branch_spec(
    {
        "metadata": {"name": "downtown", "namespace": "team", "uid": "u", "generation": 2},
        "spec": {"clientRef": {"name": "acme"}, "accountId": "123", "locationId": "456"},
    }
)
READY_CLIENT = branches.ClientState(exists=True, ready=True, access=ACCESS)


def check(accessible: bool, generation: int = 2, at: dt.datetime = T0) -> branches.LocationCheck:
    return branches.LocationCheck(accessible, at, generation, title="Downtown")


def test_spec_defaults():
    assert SPEC.token_secret_name == "downtown-google-token"
    assert SPEC.location.location_name == "accounts/123/locations/456"


def test_location_check_once_per_generation_then_daily():
    assert branches.location_check_due(SPEC, None, T0, DAY)
    assert branches.location_check_due(SPEC, check(True, generation=1), T0, DAY)
    assert not branches.location_check_due(SPEC, check(True), T0 + dt.timedelta(hours=23), DAY)
    assert branches.location_check_due(SPEC, check(True), T0 + DAY, DAY)


def test_refused_location_is_asked_again_sooner():
    later = T0 + branches.REFUSED_LOCATION_RECHECK
    assert branches.location_check_due(SPEC, check(False), later, DAY)


def test_ready_needs_client_token_and_location():
    missing = branches.branch_ready(SPEC, branches.ClientState(False, False), None, T0)
    assert (missing.status, missing.reason) == (False, Reason.CLIENT_NOT_READY)
    assert "acme" in missing.message
    not_ready = branches.ClientState(True, False, reason="ConsentRequired")
    assert branches.branch_ready(SPEC, not_ready, None, T0).reason == Reason.CLIENT_NOT_READY
    pending = branches.branch_ready(SPEC, READY_CLIENT, None, T0)
    assert pending.reason == Reason.LOCATION_CHECK_PENDING
    refused = branches.branch_ready(SPEC, READY_CLIENT, check(False), T0)
    assert (refused.status, refused.reason) == (False, Reason.LOCATION_NOT_ACCESSIBLE)
    ready = branches.branch_ready(SPEC, READY_CLIENT, check(True), T0)
    assert (ready.status, ready.reason) == (True, Reason.LOCATION_VERIFIED)


def test_expired_client_token_is_not_ready():
    late = T0 + dt.timedelta(hours=2)
    assert not branches.branch_ready(SPEC, READY_CLIENT, check(True), late).status


def test_status_round_trips_the_location():
    fields = branches.branch_status_fields(SPEC, check(True), written=True)
    assert branches.location_from_status(fields) == check(True)
    assert fields["tokenSecretName"] == "downtown-google-token"


def test_a_refresh_changes_nothing_in_branch_status():
    """The token's expiry lives in the Secret: a new token must not cost a status write."""
    later = dataclasses.replace(
        READY_CLIENT,
        access=dataclasses.replace(READY_CLIENT.access, expires_at=T0 + dt.timedelta(hours=2)),
    )
    assert branches.branch_ready(SPEC, READY_CLIENT, check(True), T0) == branches.branch_ready(
        SPEC, later, check(True), T0
    )
    assert branches.branch_status_fields(SPEC, check(True), written=True)["expiresAt"] is None
