"""`google-token-operator authorize NAME -n NS`: print a GoogleClient's consent URL and wait.

The operator publishes the URL (it creates the pending consent for every GoogleClient that
needs one); this command shows it and waits until the GoogleClient is Authorized. `decide`
works out, from one reading of the GoogleClient, what to print and whether to stop; the loop
in `wait_for_authorization` only fetches, prints and sleeps, with its fetch, clock and sleep
passed in.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import enum
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TextIO

from ..blockers import (
    FIX_CONSENT_FAILURES,
    Blocker,
    ConsentFailure,
    Kind,
    blocker_of,
    consent_failure_of,
)
from ..conditions import AUTHORIZED, READY, Reason, find_condition
from ..kube import Kube
from ..naming import default_token_secret_name
from ..timeutil import format_rfc3339, parse_rfc3339
from . import waiting
from .waiting import format_elapsed

# The operator publishes a URL within a second or so; only a longer wait needs explaining.
SLOW_URL_NOTICE = dt.timedelta(seconds=2)
# As long as a consent URL lives by default (CONSENT_TTL).
DEFAULT_TIMEOUT_SECONDS = 900


class Exit(enum.IntEnum):
    AUTHORIZED = 0
    FAILED = waiting.FAILED  # no such GoogleClient, or the Kubernetes API cannot be read
    DENIED = 3
    TIMED_OUT = waiting.TIMED_OUT
    BLOCKED = waiting.BLOCKED  # something must be fixed first (the message says what)


@dataclasses.dataclass(frozen=True)
class ClientStatus:
    """What this command reads from a GoogleClient."""

    authorized: bool
    authorized_reason: str
    ready_reason: str
    ready_message: str
    url: str
    url_expires_at: dt.datetime | None
    fingerprint: str
    account: str
    token_secret: str


def read_status(body: Mapping[str, Any]) -> ClientStatus:
    status = body.get("status") or {}
    conditions = status.get("conditions") or []
    authorized = find_condition(conditions, AUTHORIZED)
    ready = find_condition(conditions, READY)
    authorization = status.get("authorization") or {}
    expires_at = authorization.get("expiresAt")
    name = str((body.get("metadata") or {}).get("name", ""))
    return ClientStatus(
        authorized=authorized.get("status") == "True",
        authorized_reason=str(authorized.get("reason") or ""),
        ready_reason=str(ready.get("reason") or ""),
        ready_message=str(ready.get("message") or ""),
        url=str(authorization.get("url") or ""),
        url_expires_at=parse_rfc3339(expires_at) if expires_at else None,
        fingerprint=str(authorization.get("fingerprint") or ""),
        account=str((status.get("account") or {}).get("email") or ""),
        token_secret=str(
            status.get("tokenSecretName")
            or (body.get("spec") or {}).get("tokenSecretName")
            or default_token_secret_name(name)
        ),
    )


@dataclasses.dataclass(frozen=True)
class ShownConsent:
    """The consent URL printed for the person."""

    url: str
    expires_at: dt.datetime | None
    fingerprint: str
    # Authorized already said ConsentDenied (an earlier attempt) when this URL was shown.
    denied_before: bool

    def spent(self, status: ClientStatus, now: dt.datetime) -> bool:
        """The operator withdrew this URL before it expired and while the consent settings
        stayed the same: someone used it."""
        unexpired = self.expires_at is None or now < self.expires_at
        return status.url != self.url and unexpired and status.fingerprint == self.fingerprint


@dataclasses.dataclass(frozen=True)
class Watch:
    """What the command knows between two readings of the GoogleClient."""

    namespace: str
    name: str
    started: dt.datetime
    timeout: dt.timedelta
    shown: ShownConsent | None = None
    noticed_slow_url: bool = False
    # status.lastConsentFailure at the first reading: a different one is this wait's.
    read: bool = False
    known_failure: ConsentFailure | None = None

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


Decision = waiting.Step[Watch]

DENIED_ADVICE = " Run this command again for a new consent URL."


def decide(watch: Watch, body: Mapping[str, Any] | None, now: dt.datetime) -> Decision:
    """What to print and whether to stop, from one reading of the GoogleClient (None: absent)."""
    if body is None:
        return Decision(watch, (waiting.not_found(watch.namespace, watch.name),), exit=Exit.FAILED)
    status = read_status(body)
    if status.authorized:
        return Decision(watch, authorized_lines(watch, status), exit=Exit.AUTHORIZED)
    lines: tuple[str, ...] = ()
    failure = waiting.new_consent_failure(watch.known_failure, body)
    if not watch.read:
        watch = dataclasses.replace(
            watch, read=True, known_failure=consent_failure_of(body.get("status"))
        )
    elif failure is not None:
        line = waiting.consent_failure_line(str(watch), failure)
        if failure.reason == Reason.CONSENT_DENIED:
            return Decision(watch, (line + DENIED_ADVICE,), exit=Exit.DENIED)
        if failure.reason in FIX_CONSENT_FAILURES:
            return Decision(watch, (line,), exit=Exit.BLOCKED)
        lines, watch = (line,), dataclasses.replace(watch, known_failure=failure)
    if is_new_denial(watch, status, now):
        return Decision(
            watch,
            (
                f"Consent for GoogleClient {watch} was denied at Google; nothing was stored."
                + DENIED_ADVICE,
            ),
            exit=Exit.DENIED,
        )
    blocker = blocker_of(body.get("status"))
    if blocker.kind is Kind.FIX:
        return Decision(watch, (waiting.blocked_line(str(watch), blocker),), exit=Exit.BLOCKED)
    elapsed = now - watch.started
    if elapsed >= watch.timeout:
        return Decision(watch, (timeout_message(watch, status, blocker),), exit=Exit.TIMED_OUT)
    if status.url and (watch.shown is None or status.url != watch.shown.url):
        lines += consent_url_lines(status, renewed=watch.shown is not None)
        shown = ShownConsent(
            status.url,
            status.url_expires_at,
            status.fingerprint,
            denied_before=status.authorized_reason == Reason.CONSENT_DENIED,
        )
        watch = dataclasses.replace(watch, shown=shown)
    elif watch.shown is None and not watch.noticed_slow_url and elapsed > SLOW_URL_NOTICE:
        lines += (
            f"GoogleClient {watch}: {blocker.message}; waiting…"
            if blocker.kind is Kind.UNOBSERVED
            else "waiting for the operator to publish a consent URL…",
        )
        watch = dataclasses.replace(watch, noticed_slow_url=True)
    return Decision(watch, lines, status_line(watch, status, elapsed))


def is_new_denial(watch: Watch, status: ClientStatus, now: dt.datetime) -> bool:
    """Denied at the URL this command showed, not at an earlier one.

    ConsentDenied stays until a consent succeeds, so after an earlier denial only the URL
    shown here being spent tells a new denial apart.
    """
    shown = watch.shown
    if shown is None or status.authorized_reason != Reason.CONSENT_DENIED:
        return False
    return not shown.denied_before or shown.spent(status, now)


def authorized_lines(watch: Watch, status: ClientStatus) -> tuple[str, ...]:
    already = "already " if watch.shown is None else ""
    return (
        f"GoogleClient {watch} is {already}authorized.",
        f"  account:       {status.account or '(e-mail not known yet)'}",
        f"  access token:  Secret {watch.namespace}/{status.token_secret}",
    )


def consent_url_lines(status: ClientStatus, *, renewed: bool) -> tuple[str, ...]:
    expiry = (
        f" (it expires at {format_rfc3339(status.url_expires_at)})" if status.url_expires_at else ""
    )
    intro = (
        "A new consent URL was published (the previous one expired, was used without "
        "success, or the GoogleClient changed). Open this one instead"
        if renewed
        else "Open this URL in a browser and approve access"
    )
    return (f"{intro}{expiry}:", "", f"    {status.url}", "")


def status_line(watch: Watch, status: ClientStatus, elapsed: dt.timedelta) -> str:
    if watch.shown is None:
        waiting_for = "the operator to publish a consent URL"
    else:
        until = watch.shown.expires_at
        waiting_for = "a person to consent at the URL above" + (
            f" (until {format_rfc3339(until)})" if until else ""
        )
    return (
        f"waiting for {waiting_for}: {format_elapsed(elapsed)} elapsed, "
        f"Ready: {status.ready_reason or 'not reported yet'}"
    )


def timeout_message(watch: Watch, status: ClientStatus, blocker: Blocker) -> str:
    waited = format_elapsed(watch.timeout)
    ready = f"Ready: {status.ready_reason or 'not reported'}"
    if status.ready_message:
        ready += f" ({status.ready_message})"
    if blocker.kind is Kind.UNOBSERVED:
        return f"Gave up after {waited}. " + waiting.unacknowledged(
            str(watch), watch.namespace, "anything"
        )
    if watch.shown is None:
        return (
            f"No consent URL appeared for GoogleClient {watch} within {waited}. Check that the "
            f"operator runs and watches namespace {watch.namespace} (its log says why it "
            f"waits), and the GoogleClient's conditions. {ready}."
        )
    return (
        f"Still waiting for a person to consent: GoogleClient {watch} was not authorized "
        f"within {waited}. Check that the consent URL was opened and approved, and that "
        "Google's redirect reached the callback "
        "(spec.redirectURI or the operator's CALLBACK_URL must point at it); "
        f"`kubectl describe googleclient {watch.name} -n {watch.namespace}` shows the "
        f"conditions and events. {ready}."
    )


# -- I/O ------------------------------------------------------------------------------------


async def wait_for_authorization(
    fetch: Callable[[], Awaitable[Mapping[str, Any] | None]],
    namespace: str,
    name: str,
    give_up_after: dt.timedelta,
    *,
    out: TextIO,
    clock: Callable[[], dt.datetime],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Exit:
    watch = Watch(namespace, name, started=clock(), timeout=give_up_after)
    return Exit(await waiting.follow(fetch, decide, watch, out=out, clock=clock, sleep=sleep))


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Print the consent URL of a GoogleClient (the operator publishes it in "
        "status.authorization.url) and wait until a Google account has consented; then print "
        "the account and the Secret that holds the access token. Exit status: 0 authorized, "
        "1 not found or Kubernetes unreachable, 3 consent denied, 4 timed out, 5 blocked "
        "(something must be fixed first; the message says what)."
    )
    waiting.add_target_arguments(parser, DEFAULT_TIMEOUT_SECONDS)


def run(args: argparse.Namespace) -> int:
    async def work(kube: Kube, namespace: str) -> int:
        return await wait_for_authorization(
            lambda: kube.get_resource("googleclients", namespace, args.name),
            namespace,
            args.name,
            dt.timedelta(seconds=args.timeout),
            out=sys.stdout,
            clock=waiting.utc_now,
        )

    return waiting.run_with_kube(
        "authorize",
        args.namespace,
        work,
        lambda namespace: f"cannot read GoogleClient {namespace}/{args.name}",
        **waiting.kube_flags(args),
    )
