"""Notices to a person: which condition transitions call for one, what it says (JSON or Slack),
and its delivery state as kept in the GoogleClient's status (pure; the clock is passed in).

The state lives in `status.notices` so that a restart or a new leader neither loses a notice nor
sends one the receiver already accepted: `pending` notices are tried until a 2xx (then their id
goes to `delivered`) or for RETRY_FOR; `lost` and `failingSince`/`failing` remember the open
transitions a later notice (AuthorizationRestored, RefreshRecovered) closes. The status is
written by anyone who may write it: every value is read back clamped, unknown ones dropped."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from ..conditions import AUTHORIZED, find_condition
from ..timeutil import format_rfc3339, parse_duration, parse_rfc3339

AUTHORIZATION_LOST = "AuthorizationLost"
AUTHORIZATION_RESTORED = "AuthorizationRestored"
REFRESH_FAILING = "RefreshFailing"
REFRESH_RECOVERED = "RefreshRecovered"
NOTICE_TYPES = (AUTHORIZATION_LOST, AUTHORIZATION_RESTORED, REFRESH_FAILING, REFRESH_RECOVERED)

FORMATS = ("json", "slack")
DEFAULT_AFTER = dt.timedelta(minutes=15)
# Long enough for a receiver's deploy or outage; a notice older than this says little new.
RETRY_FOR = dt.timedelta(hours=1)
RETRY_CAP = dt.timedelta(minutes=10)
MAX_AFTER = dt.timedelta(days=7)
# What status keeps: enough to drop repeats, small enough for any number of clients.
MAX_PENDING = 8
MAX_DELIVERED = 16
MAX_TEXT = 1024
ID_LENGTH = 24


class NotifySpecError(ValueError):
    """spec.notify cannot be used; the message names the field and the fix."""


@dataclasses.dataclass(frozen=True)
class SecretRef:
    namespace: str
    name: str
    key: str


@dataclasses.dataclass(frozen=True)
class NotifySpec:
    """Where a client's notices go (None: the operator's default, if any) and when."""

    webhook: SecretRef | None
    format: str  # "" when the spec leaves it to the webhook Secret
    after: dt.timedelta = DEFAULT_AFTER


def parse_notify_spec(spec: Mapping[str, Any], namespace: str) -> NotifySpec:
    notify = spec.get("notify")
    if notify is None:
        return NotifySpec(None, "")
    if not isinstance(notify, Mapping):
        raise NotifySpecError("spec.notify must be an object; see `kubectl explain googleclient`")
    webhook = None
    ref = notify.get("webhookSecretRef")
    if ref is not None:
        name = ref.get("name") if isinstance(ref, Mapping) else None
        key = ref.get("key", "url") if isinstance(ref, Mapping) else None
        if not isinstance(name, str) or not name or not isinstance(key, str) or not key:
            raise NotifySpecError(
                "spec.notify.webhookSecretRef needs name (a Secret in this namespace) and key "
                "(default url) holding the webhook URL"
            )
        webhook = SecretRef(namespace, name[:253], key[:253])
    fmt = notify.get("format") or ""
    if fmt and fmt not in FORMATS:
        raise NotifySpecError(f"spec.notify.format must be one of {', '.join(FORMATS)}")
    after = DEFAULT_AFTER
    if notify.get("after"):
        try:
            after = parse_duration(str(notify["after"])[:32])
        except ValueError as error:
            raise NotifySpecError(f"spec.notify.after: {error}") from None
        if not dt.timedelta(0) < after <= MAX_AFTER:
            raise NotifySpecError("spec.notify.after must be between 1s and 168h, such as 15m")
    return NotifySpec(webhook, str(fmt), after)


@dataclasses.dataclass(frozen=True)
class Notice:
    """One notice and its delivery state."""

    type: str
    id: str
    reason: str
    message: str
    account: str
    time: str  # of the transition (RFC 3339)
    consent_url: str = ""
    command: str = ""
    attempts: int = 0
    next_attempt: dt.datetime | None = None  # None: at once

    def due(self, now: dt.datetime) -> bool:
        return self.next_attempt is None or self.next_attempt <= now

    def facts(self) -> dict[str, Any]:
        """What every form of this notice says (status, JSON body)."""
        return {
            "type": self.type,
            "id": self.id,
            "reason": self.reason,
            "message": self.message,
            "account": self.account,
            "time": self.time,
        }

    def to_status(self) -> dict[str, Any]:
        item: dict[str, Any] = {**self.facts(), "attempts": self.attempts}
        if self.consent_url:
            item["consentURL"] = self.consent_url
        if self.command:
            item["command"] = self.command
        if self.next_attempt is not None:
            item["nextAttemptTime"] = format_rfc3339(self.next_attempt)
        return item


@dataclasses.dataclass(frozen=True)
class NoticeState:
    """status.notices as plain data."""

    pending: tuple[Notice, ...] = ()
    delivered: tuple[str, ...] = ()
    lost: str = ""  # the AuthorizationLost id not yet followed by AuthorizationRestored
    failing_since: dt.datetime | None = None  # refreshes have failed since then
    failing: str = ""  # the RefreshFailing id not yet followed by RefreshRecovered

    def to_status(self) -> dict[str, Any]:
        # Every key always, "" for none: a JSON merge patch of a nested object keeps the keys
        # it does not name, so a key left out would never go.
        return {
            "pending": [notice.to_status() for notice in self.pending],
            "delivered": list(self.delivered),
            "lost": self.lost,
            "failingSince": format_rfc3339(self.failing_since) if self.failing_since else "",
            "failing": self.failing,
        }

    def wake(self, after: dt.timedelta, sendable: bool = True) -> dt.datetime | None:
        """When a pass must look again for this state: a retry (only if anything can be sent),
        or a RefreshFailing due."""
        moments = [notice.next_attempt for notice in self.pending if notice.next_attempt]
        if not sendable:
            moments = []
        if self.failing_since is not None and not self.failing:
            moments.append(self.failing_since + after)
        return min(moments, default=None)


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _time(value: Any) -> dt.datetime | None:
    try:
        return parse_rfc3339(value) if isinstance(value, str) and value else None
    except ValueError:
        return None


def _notice_from_status(item: Any) -> Notice | None:
    if not isinstance(item, Mapping) or item.get("type") not in NOTICE_TYPES:
        return None
    notice_id = _text(item.get("id"), ID_LENGTH)
    if not notice_id:
        return None
    attempts = item.get("attempts")
    return Notice(
        type=str(item["type"]),
        id=notice_id,
        reason=_text(item.get("reason"), 128),
        message=_text(item.get("message")),
        account=_text(item.get("account"), 320),
        time=_text(item.get("time"), 40),
        consent_url=_text(item.get("consentURL"), 4096),
        command=_text(item.get("command"), 512),
        attempts=attempts if isinstance(attempts, int) and 0 <= attempts < 10_000 else 0,
        next_attempt=_time(item.get("nextAttemptTime")),
    )


def state_from_status(status: Mapping[str, Any]) -> NoticeState:
    """The notice state a status holds; what cannot be read counts as absent."""
    raw = status.get("notices")
    if not isinstance(raw, Mapping):
        return NoticeState()
    pending_raw = raw.get("pending")
    pending = [
        notice
        for item in (pending_raw if isinstance(pending_raw, Sequence) else ())[:MAX_PENDING]
        if (notice := _notice_from_status(item)) is not None
    ]
    delivered_raw = raw.get("delivered")
    delivered = [
        _text(item, ID_LENGTH)
        for item in (delivered_raw if isinstance(delivered_raw, Sequence) else ())
        if isinstance(item, str) and item
    ][-MAX_DELIVERED:]
    return NoticeState(
        pending=tuple(pending),
        delivered=tuple(delivered),
        lost=_text(raw.get("lost"), ID_LENGTH),
        failing_since=_time(raw.get("failingSince")),
        failing=_text(raw.get("failing"), ID_LENGTH),
    )


def notice_id(uid: str, notice_type: str, since: str) -> str:
    """Stable per transition: the same client, type and transition time give the same id, so
    a receiver can drop a repeat."""
    return hashlib.sha256(f"{uid}/{notice_type}/{since}".encode()).hexdigest()[:ID_LENGTH]


@dataclasses.dataclass(frozen=True)
class ClientFacts:
    """What a notice says about its client, taken from the status a pass writes."""

    namespace: str
    name: str
    uid: str
    pinned: bool  # spec.allowedAccounts or spec.hostedDomain: only that account may consent
    before: Sequence[Mapping[str, Any]] | None  # the conditions before this pass
    after: Sequence[Mapping[str, Any]]  # the conditions it writes (merged, with times)
    status: Mapping[str, Any]  # the other status fields it writes (and the previous ones)
    failed_refreshes: int


def _account(facts: ClientFacts) -> str:
    account = facts.status.get("account")
    return _text(account.get("email"), 320) if isinstance(account, Mapping) else ""


def _consent_url(facts: ClientFacts) -> str:
    authorization = facts.status.get("authorization")
    if not facts.pinned or not isinstance(authorization, Mapping):
        return ""
    return _text(authorization.get("url"), 4096)


def _command(facts: ClientFacts, verb: str) -> str:
    return f"google-token-operator {verb} {facts.name} -n {facts.namespace}"


def _new_notice(facts: ClientFacts, notice_type: str, since: str, now: dt.datetime) -> Notice:
    authorized = find_condition(facts.after, AUTHORIZED)
    ready = find_condition(facts.after, "Ready")
    source = authorized if notice_type in (AUTHORIZATION_LOST, AUTHORIZATION_RESTORED) else ready
    consent_url = _consent_url(facts) if notice_type == AUTHORIZATION_LOST else ""
    verb = "authorize" if notice_type == AUTHORIZATION_LOST else "status"
    return Notice(
        type=notice_type,
        id=notice_id(facts.uid, notice_type, since),
        reason=_text(source.get("reason"), 128),
        message=_text(source.get("message")),
        account=_account(facts),
        time=since or format_rfc3339(now),
        consent_url=consent_url,
        command="" if consent_url else _command(facts, verb),
    )


def advance(
    state: NoticeState, facts: ClientFacts, after: dt.timedelta, now: dt.datetime
) -> NoticeState:
    """The state once this pass's transitions are noted: new notices join `pending`."""
    was = find_condition(facts.before, AUTHORIZED).get("status")
    authorized = find_condition(facts.after, AUTHORIZED)
    is_now = authorized.get("status")
    since = _text(authorized.get("lastTransitionTime"), 40) or format_rfc3339(now)
    new: list[Notice] = []
    lost, failing_since, failing = state.lost, state.failing_since, state.failing
    if was == "True" and is_now == "False":
        notice = _new_notice(facts, AUTHORIZATION_LOST, since, now)
        new.append(notice)
        # A lost grant says more than failing refreshes: that run ends without its own notice.
        lost, failing_since, failing = notice.id, None, ""
    elif is_now == "True" and lost:
        new.append(_new_notice(facts, AUTHORIZATION_RESTORED, since, now))
        lost = ""
    if is_now == "True" and facts.failed_refreshes > 0:
        failing_since = failing_since or now
        if not failing and now >= failing_since + after:
            notice = _new_notice(facts, REFRESH_FAILING, format_rfc3339(failing_since), now)
            new.append(notice)
            failing = notice.id
    elif failing_since is not None:
        # Recovered, or no longer authorized (a loss says more; nothing to wait for).
        if failing and is_now == "True":
            new.append(_new_notice(facts, REFRESH_RECOVERED, format_rfc3339(now), now))
        failing_since, failing = None, ""
    known = {notice.id for notice in state.pending} | set(state.delivered)
    fresh = tuple(notice for notice in new if notice.id not in known)
    # A notice nobody could send for RETRY_FOR (a refused URL, a missing Secret) says little.
    kept = tuple(notice for notice in state.pending if not _expired(notice, now))
    # Oldest first; past the cap the oldest go (the newest says what holds now).
    pending = (*kept, *fresh)[-MAX_PENDING:]
    return dataclasses.replace(
        state, pending=pending, lost=lost, failing_since=failing_since, failing=failing
    )


def _expired(notice: Notice, now: dt.datetime) -> bool:
    first = _time(notice.time)
    return first is not None and now > first + RETRY_FOR


def retry_at(notice: Notice, now: dt.datetime, base: dt.timedelta) -> dt.datetime | None:
    """When to try `notice` again after its latest failed attempt (`notice.attempts` counts
    it), or None once RETRY_FOR has passed since its transition: then it is dropped."""
    delay = min(base * (2 ** min(notice.attempts - 1, 20)), RETRY_CAP)
    first = _time(notice.time) or now
    moment = now + delay
    return moment if moment <= first + RETRY_FOR else None


def with_attempt(
    state: NoticeState, notice: Notice, accepted: bool, now: dt.datetime, base: dt.timedelta
) -> tuple[NoticeState, str]:
    """The state after one attempt at `notice`, and its result: delivered, failed, abandoned."""
    others = tuple(item for item in state.pending if item.id != notice.id)
    if accepted:
        delivered = (*state.delivered, notice.id)[-MAX_DELIVERED:]
        return dataclasses.replace(state, pending=others, delivered=delivered), "delivered"
    tried = dataclasses.replace(notice, attempts=notice.attempts + 1)
    again = retry_at(tried, now, base)
    if again is None:
        return dataclasses.replace(state, pending=others), "abandoned"
    kept = tuple(
        dataclasses.replace(tried, next_attempt=again) if item.id == notice.id else item
        for item in state.pending
    )
    return dataclasses.replace(state, pending=kept), "failed"


def notice_body(notice: Notice, namespace: str, name: str) -> dict[str, Any]:
    """The JSON notice (the contract's fields; consentURL or command)."""
    body: dict[str, Any] = {"namespace": namespace, "name": name, **notice.facts()}
    if notice.consent_url:
        body["consentURL"] = notice.consent_url
    else:
        body["command"] = notice.command
    return body


_HEADLINES = {
    AUTHORIZATION_LOST: ":warning: Google authorization lost",
    AUTHORIZATION_RESTORED: ":white_check_mark: Google authorization restored",
    REFRESH_FAILING: ":warning: Google token refreshes failing",
    REFRESH_RECOVERED: ":white_check_mark: Google token refreshes recovered",
}


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(notice: Notice, namespace: str, name: str) -> dict[str, Any]:
    """A Slack incoming-webhook message with the same facts as the JSON notice."""
    lines = [
        f"*{_HEADLINES[notice.type]}*: GoogleClient `{namespace}/{name}`",
        f"*Reason:* {_slack_escape(notice.reason)}: {_slack_escape(notice.message)}",
        f"*Account:* {_slack_escape(notice.account or 'unknown')}",
        f"*Time:* {notice.time}  *Id:* `{notice.id}`",
    ]
    if notice.consent_url:
        lines.append(f"*Consent again:* <{notice.consent_url}|open the consent page>")
    else:
        lines.append(f"*Run:* `{notice.command}`")
    text = "\n".join(lines)
    return {
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    }


def render(notice: Notice, fmt: str, namespace: str, name: str) -> dict[str, Any]:
    return (slack_body if fmt == "slack" else notice_body)(notice, namespace, name)
