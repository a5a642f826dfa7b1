"""A pass's webhook notices: note the transitions its status write makes, send the notices
that are due (leader only: passes run on the leader) and say what to store.

Decided by notify.notices (pure); sent through the webhook edge. The webhook URL is a
credential: it goes nowhere but into the request; messages, Events and logs show its host."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

import kopf

from ..clients import ClientSpec, generation_of
from ..conditions import NOTIFIED, Condition, Reason, merge_conditions
from ..naming import Key
from ..notify import notices
from ..notify.notices import NoticeState, NotifySpec, NotifySpecError
from ..notify.url_policy import UrlRefused
from ..runtime.context import Operator
from ..timeutil import format_rfc3339
from ..webhook_http import WebhookError


@dataclasses.dataclass(frozen=True)
class NoticeOutcome:
    """What the pass adds to its status write, and when it must look again."""

    condition: Condition | None = None
    fields: Mapping[str, Any] = dataclasses.field(default_factory=lambda: {"notices": None})
    wake: dt.datetime | None = None
    secret: Key | None = None  # the webhook Secret the pass now depends on


@dataclasses.dataclass(frozen=True)
class Webhook:
    url: str
    format: str


class NoticeStep:
    def __init__(self, operator: Operator, body: Mapping[str, Any], logger: kopf.Logger) -> None:
        self.op = operator
        self.body = body
        self.logger = logger

    async def run(
        self,
        spec: ClientSpec,
        last_status: Mapping[str, Any],
        conditions: list[Condition],
        fields: Mapping[str, Any],
        now: dt.datetime,
    ) -> NoticeOutcome:
        try:
            notify = notices.parse_notify_spec(self.body.get("spec") or {}, spec.namespace)
        except NotifySpecError as error:
            return NoticeOutcome(
                Condition(NOTIFIED, False, Reason.NOTIFY_SPEC_INVALID, str(error)), {}
            )
        secret = self._webhook_secret(notify)
        if secret is None or self.op.webhooks is None:
            return NoticeOutcome()
        after = merge_conditions(
            last_status.get("conditions"), conditions, generation_of(self.body), now
        )
        facts = notices.ClientFacts(
            namespace=spec.namespace,
            name=spec.name,
            uid=spec.uid,
            pinned=bool(spec.allowed_accounts or spec.hosted_domain),
            before=last_status.get("conditions"),
            after=after,
            status={**last_status, **fields},
            failed_refreshes=int(fields.get("failedRefreshAttempts") or 0),
        )
        state = notices.advance(notices.state_from_status(last_status), facts, notify.after, now)
        condition, state = await self._deliver(spec, secret, notify, state, now)
        # Nothing can be sent until the Secret changes (which wakes the pass): no retry wake.
        sendable = condition.reason not in (
            Reason.WEBHOOK_URL_REFUSED,
            Reason.WEBHOOK_SECRET_NOT_FOUND,
        )
        wake = state.wake(notify.after, sendable)
        return NoticeOutcome(condition, {"notices": state.to_status()}, wake, secret[0])

    def _webhook_secret(self, notify: NotifySpec) -> tuple[Key, str] | None:
        """(the Secret holding the URL, its key): the client's own, else the operator's."""
        if notify.webhook is not None:
            return (notify.webhook.namespace, notify.webhook.name), notify.webhook.key
        default = self.op.settings.notify_webhook_secret
        if default:
            return (self.op.settings.operator_namespace, default), "url"
        return None

    async def _webhook(self, secret: tuple[Key, str], notify: NotifySpec) -> Webhook | str:
        """The webhook, or why there is none (a condition message)."""
        (namespace, name), key = secret
        _, data = await self.op.credentials_data((namespace, name))
        url = (data or {}).get(key, "")
        if not url:
            return f"the webhook Secret {namespace}/{name} is missing or has no key {key!r}"
        fmt = notify.format or (data or {}).get("format", "").strip() or "json"
        if fmt not in notices.FORMATS:
            return (
                f"the webhook Secret {namespace}/{name} has format {fmt[:20]!r}: use json or slack"
            )
        return Webhook(url, fmt)

    async def _deliver(
        self,
        spec: ClientSpec,
        secret: tuple[Key, str],
        notify: NotifySpec,
        state: NoticeState,
        now: dt.datetime,
    ) -> tuple[Condition, NoticeState]:
        """Send the due notices; the Notified condition and the state after the attempts."""
        assert self.op.webhooks is not None
        webhook = await self._webhook(secret, notify)
        if isinstance(webhook, str):
            return Condition(NOTIFIED, False, Reason.WEBHOOK_SECRET_NOT_FOUND, webhook), state
        try:
            target = self.op.webhooks.check(webhook.url)
        except UrlRefused as refused:
            return self._refused(refused), state
        last_problem = ""
        for notice in [item for item in state.pending if item.due(now)]:
            body = notices.render(notice, webhook.format, spec.namespace, spec.name)
            try:
                answer = await self.op.webhooks.post(webhook.url, body)
                problem = "" if 200 <= answer < 300 else f"HTTP {answer}"
            except UrlRefused as refused:
                return self._refused(refused), state
            except WebhookError as error:
                problem = str(error)
            state, result = notices.with_attempt(
                state, notice, not problem, now, self.op.settings.notify_retry_base
            )
            self._record(notice, result, target.shown, problem)
            last_problem = problem or last_problem
        failing = [item for item in state.pending if item.attempts]
        if failing:
            first = min(item.next_attempt or now for item in failing)
            message = (
                f"{len(failing)} notice(s) to {target.shown} not accepted yet"
                f"{f' ({last_problem})' if last_problem else ''}; next try at "
                f"{format_rfc3339(first)}"
            )
            return Condition(NOTIFIED, False, Reason.NOTICE_DELIVERY_FAILING, message), state
        return Condition(
            NOTIFIED, True, Reason.NOTICES_DELIVERED, f"notices go to {target.shown}"
        ), state

    def _refused(self, refused: UrlRefused) -> Condition:
        """No request is made to a refused URL; the condition says why."""
        self.op.metrics.notifications.labels("refused").inc()
        return Condition(NOTIFIED, False, Reason.WEBHOOK_URL_REFUSED, str(refused))

    def _record(self, notice: notices.Notice, result: str, shown: str, problem: str) -> None:
        self.op.metrics.notifications.labels(result).inc()
        what = f"{notice.type} notice {notice.id} to {shown}"
        reason, message = {
            "delivered": (Reason.NOTICE_DELIVERED, f"{what} delivered"),
            "failed": (
                Reason.NOTICE_DELIVERY_FAILED,
                f"{what} failed ({problem}); tried again later",
            ),
            "abandoned": (Reason.NOTICE_ABANDONED, f"{what} abandoned ({problem})"),
        }[result]
        self.op.events.post(self.body, result != "delivered", reason, message)
        self.logger.info(message)
