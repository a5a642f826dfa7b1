"""Notices as plain data: transitions, stable ids, the bodies, the retry schedule and the state
kept in status (read back clamped whatever a status holds)."""

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from google_token_operator.notify import notices
from google_token_operator.notify.notices import ClientFacts, NoticeState, NotifySpecError

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
AFTER = dt.timedelta(minutes=15)
BASE = dt.timedelta(seconds=30)


def authorized(status: str, reason: str, when: str = "2026-01-01T12:00:00Z") -> dict[str, str]:
    return {
        "type": "Authorized",
        "status": status,
        "reason": reason,
        "message": f"{reason} message",
        "lastTransitionTime": when,
    }


def ready(reason: str = "TokenValid") -> dict[str, str]:
    return {"type": "Ready", "status": "True", "reason": reason, "message": f"{reason} msg"}


def facts(before, after, failed: int = 0, pinned: bool = False) -> ClientFacts:
    return ClientFacts(
        namespace="team",
        name="acme",
        uid="uid-1",
        pinned=pinned,
        before=before,
        after=after,
        status={
            "account": {"email": "owner@example.com"},
            "authorization": {"url": "https://accounts.example/consent?state=s"},
        },
        failed_refreshes=failed,
    )


TRUE = [authorized("True", "Authorized"), ready()]
REVOKED = [authorized("False", "AuthorizationRevoked", "2026-01-01T12:05:00Z"), ready()]
BACK = [authorized("True", "Authorized", "2026-01-01T12:09:00Z"), ready()]


def test_a_loss_then_a_restore_give_two_notices_with_distinct_stable_ids():
    lost = notices.advance(NoticeState(), facts(TRUE, REVOKED, pinned=True), AFTER, T0)
    assert [n.type for n in lost.pending] == ["AuthorizationLost"]
    notice = lost.pending[0]
    assert notice.consent_url.startswith("https://") and not notice.command
    assert (notice.reason, notice.account, notice.time) == (
        "AuthorizationRevoked",
        "owner@example.com",
        "2026-01-01T12:05:00Z",
    )
    again = notices.advance(NoticeState(), facts(TRUE, REVOKED, pinned=True), AFTER, T0)
    assert again.pending[0].id == notice.id  # deterministic: uid, type, transition time
    restored = notices.advance(lost, facts(REVOKED, BACK), AFTER, T0)
    assert [n.type for n in restored.pending] == ["AuthorizationLost", "AuthorizationRestored"]
    assert restored.pending[1].id != notice.id and not restored.lost
    # Seen again (a pass that did not write): nothing new.
    assert notices.advance(restored, facts(BACK, BACK), AFTER, T0).pending == restored.pending


def test_an_unpinned_client_gets_the_command_and_a_first_consent_is_no_restore():
    lost = notices.advance(NoticeState(), facts(TRUE, REVOKED), AFTER, T0)
    assert lost.pending[0].command == "google-token-operator authorize acme -n team"
    assert "consentURL" not in notices.notice_body(lost.pending[0], "team", "acme")
    first = [authorized("False", "ConsentRequired"), ready()]
    assert notices.advance(NoticeState(), facts(first, TRUE), AFTER, T0).pending == ()


def test_refresh_failing_after_the_set_time_then_recovered():
    state = notices.advance(NoticeState(), facts(TRUE, TRUE, failed=1), AFTER, T0)
    assert state.pending == () and state.failing_since == T0
    assert state.wake(AFTER) == T0 + AFTER
    later = T0 + AFTER
    failing = notices.advance(state, facts(TRUE, TRUE, failed=4), AFTER, later - dt.timedelta(1))
    assert failing.pending == ()
    failing = notices.advance(state, facts(TRUE, TRUE, failed=4), AFTER, later)
    assert [n.type for n in failing.pending] == ["RefreshFailing"]
    assert notices.advance(failing, facts(TRUE, TRUE, failed=5), AFTER, later).pending == (
        failing.pending
    )
    recovered = notices.advance(failing, facts(TRUE, TRUE), AFTER, later)
    assert [n.type for n in recovered.pending] == ["RefreshFailing", "RefreshRecovered"]
    assert recovered.failing_since is None and not recovered.failing
    # A short failure run that never reached `after` says nothing when it ends.
    assert notices.advance(state, facts(TRUE, TRUE), AFTER, T0).pending == ()


def test_a_loss_ends_a_failing_run_without_a_recovered_notice():
    failing = notices.advance(
        notices.advance(NoticeState(), facts(TRUE, TRUE, failed=1), AFTER, T0),
        facts(TRUE, TRUE, failed=2),
        AFTER,
        T0 + AFTER,
    )
    lost = notices.advance(failing, facts(TRUE, REVOKED), AFTER, T0 + AFTER)
    assert [n.type for n in lost.pending] == ["RefreshFailing", "AuthorizationLost"]
    assert not lost.failing and lost.failing_since is None


def test_retries_back_off_until_an_hour_then_the_notice_is_abandoned():
    state = notices.advance(NoticeState(), facts(TRUE, REVOKED), AFTER, T0)
    notice_time = dt.datetime(2026, 1, 1, 12, 5, tzinfo=dt.UTC)
    now, waits = notice_time, []
    result = "failed"
    while result == "failed":
        state, result = notices.with_attempt(state, state.pending[0], False, now, BASE)
        if result == "failed":
            waits.append(state.pending[0].next_attempt - now)
            now = state.pending[0].next_attempt
    assert waits[:5] == [BASE * 2**n for n in range(5)]
    assert max(waits) == notices.RETRY_CAP and now <= notice_time + notices.RETRY_FOR
    assert result == "abandoned" and state.pending == () and state.delivered == ()


def test_a_delivery_moves_the_id_to_delivered_and_it_is_never_queued_again():
    state = notices.advance(NoticeState(), facts(TRUE, REVOKED), AFTER, T0)
    done, result = notices.with_attempt(state, state.pending[0], True, T0, BASE)
    assert result == "delivered" and done.pending == () and done.delivered == (state.pending[0].id,)
    assert notices.advance(done, facts(TRUE, REVOKED), AFTER, T0).pending == ()


def test_the_state_survives_status_and_the_merge_patch_names_every_key():
    state = notices.advance(NoticeState(), facts(TRUE, REVOKED, pinned=True), AFTER, T0)
    state, _ = notices.with_attempt(state, state.pending[0], False, T0, BASE)
    stored = json.loads(json.dumps(state.to_status()))
    assert set(stored) == {"pending", "delivered", "lost", "failingSince", "failing"}
    assert notices.state_from_status({"notices": stored}) == state


def test_slack_body_carries_the_same_facts_escaped():
    state = notices.advance(NoticeState(), facts(TRUE, REVOKED, pinned=True), AFTER, T0)
    body = notices.render(state.pending[0], "slack", "team", "acme")
    text = body["text"]
    assert "Google authorization lost" in text and "`team/acme`" in text
    assert "owner@example.com" in text and state.pending[0].id in text
    assert "<https://accounts.example/consent?state=s|open the consent page>" in text
    json_body = notices.render(state.pending[0], "json", "team", "acme")
    assert set(json_body) == {
        "type",
        "id",
        "namespace",
        "name",
        "reason",
        "message",
        "account",
        "time",
        "consentURL",
    }


@pytest.mark.parametrize(
    ("notify", "words"),
    [
        ("x", "must be an object"),
        ({"webhookSecretRef": {}}, "webhookSecretRef needs name"),
        ({"format": "xml"}, "spec.notify.format"),
        ({"after": "soon"}, "spec.notify.after"),
        ({"after": "0s"}, "between 1s and 168h"),
    ],
)
def test_bad_notify_specs_name_the_field(notify, words):
    with pytest.raises(NotifySpecError, match=words):
        notices.parse_notify_spec({"notify": notify}, "team")


def test_notify_spec_defaults():
    spec = notices.parse_notify_spec({"notify": {"webhookSecretRef": {"name": "hook"}}}, "team")
    assert spec.webhook == notices.SecretRef("team", "hook", "url")
    assert (spec.format, spec.after) == ("", AFTER)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=30),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "pending",
                        "delivered",
                        "lost",
                        "failingSince",
                        "failing",
                        "type",
                        "id",
                        "attempts",
                        "nextAttemptTime",
                        "time",
                        "AuthorizationLost",
                    ]
                ),
                inner,
                max_size=6,
            )
        ),
        max_leaves=20,
    )
)
def test_any_status_reads_as_a_clamped_state(raw):
    state = notices.state_from_status({"notices": raw})
    assert len(state.pending) <= notices.MAX_PENDING
    assert len(state.delivered) <= notices.MAX_DELIVERED
    json.dumps(state.to_status())


def test_a_failing_run_ends_without_notice_when_authorization_is_not_true():
    state = notices.advance(NoticeState(), facts(TRUE, TRUE, failed=1), AFTER, T0)
    pending = [authorized("False", "ConsentRequired"), ready()]
    ended = notices.advance(state, facts(pending, pending, failed=3), AFTER, T0 + 2 * AFTER)
    assert ended.pending == () and ended.failing_since is None
    assert ended.wake(AFTER) is None  # nothing to wake for: no busy loop


def test_a_notice_never_sent_for_an_hour_is_dropped():
    state = notices.advance(NoticeState(), facts(TRUE, REVOKED), AFTER, T0)
    sent_at = dt.datetime(2026, 1, 1, 12, 5, tzinfo=dt.UTC)
    kept = notices.advance(state, facts(REVOKED, REVOKED), AFTER, sent_at + notices.RETRY_FOR)
    assert kept.pending == state.pending
    late = sent_at + notices.RETRY_FOR + dt.timedelta(seconds=1)
    assert notices.advance(state, facts(REVOKED, REVOKED), AFTER, late).pending == ()


@given(
    st.dictionaries(
        st.sampled_from(["webhookSecretRef", "format", "after", "other"]),
        st.none()
        | st.text(max_size=20)
        | st.integers()
        | st.dictionaries(st.sampled_from(["name", "key"]), st.text(max_size=20) | st.integers()),
        max_size=4,
    )
    | st.text(max_size=5)
    | st.integers()
)
def test_any_notify_spec_parses_or_raises_the_spec_error(notify):
    try:
        spec = notices.parse_notify_spec({"notify": notify}, "team")
    except NotifySpecError:
        return
    assert spec.format in ("", *notices.FORMATS)
    assert dt.timedelta(0) < spec.after <= notices.MAX_AFTER


def test_no_retry_wake_while_nothing_can_be_sent_but_a_refresh_failing_is_still_due():
    state = notices.advance(NoticeState(), facts(TRUE, TRUE, failed=1), AFTER, T0)
    tried = notices.advance(state, facts(TRUE, REVOKED), AFTER, T0)
    tried, _ = notices.with_attempt(tried, tried.pending[0], False, T0, BASE)
    assert tried.wake(AFTER) == T0 + BASE
    assert tried.wake(AFTER, sendable=False) is None
    assert state.wake(AFTER, sendable=False) == T0 + AFTER
