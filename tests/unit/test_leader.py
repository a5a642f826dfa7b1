import datetime as dt

from google_token_operator import leader
from google_token_operator.leader import Decision, LeaseView

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
SPAN = dt.timedelta(seconds=15)


def test_free_lease_is_taken():
    assert leader.decide(LeaseView("", None, SPAN), "me", T0) is Decision.TAKE


def test_own_lease_is_renewed():
    assert leader.decide(LeaseView("me", T0, SPAN), "me", T0) is Decision.RENEW


def test_live_lease_of_another_is_respected_until_it_expires():
    lease = LeaseView("other", T0, SPAN)
    assert leader.decide(lease, "me", T0 + dt.timedelta(seconds=14)) is Decision.WAIT
    assert leader.decide(lease, "me", T0 + SPAN) is Decision.TAKE


def test_lease_spec_parsing_and_micro_time():
    spec = {
        "holderIdentity": "pod-1",
        "renewTime": leader.micro_time(T0),
        "leaseDurationSeconds": 15,
    }
    assert leader.micro_time(T0) == "2026-01-01T12:00:00.000000Z"
    assert leader.lease_view(spec) == LeaseView("pod-1", T0, SPAN)


def test_takeover_bound_is_what_the_readme_says():
    assert dt.timedelta(seconds=17) == leader.LEASE_DURATION + leader.RETRY_PERIOD
