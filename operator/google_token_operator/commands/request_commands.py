"""`google-token-operator refresh|reauthorize|revoke NAME -n NS`: ask the operator by annotation,
wait until it acknowledges the request in status.handledRequests, report the outcome.

The annotation is the whole interface (see day2.py): these commands only write it with a
fresh value and watch, so `kubectl annotate` does the same. `decide` works out, from one reading
of the GoogleClient, what to print and whether to stop.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import enum
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from ..blockers import FIX_CONSENT_FAILURES, ConsentFailure, Kind, blocker_of, consent_failure_of
from ..conditions import AUTHORIZED, READY, Reason, find_condition
from ..day2 import Request, ack_of, requested_refresh_at
from ..grant_sharing import REVOKE_SKIPPED
from ..kube import Kube, KubeError
from ..timeutil import format_rfc3339, parse_rfc3339
from . import waiting
from .authorize import consent_url_lines, read_status
from .waiting import Body, Step, format_elapsed


class Exit(enum.IntEnum):
    DONE = 0
    FAILED = waiting.FAILED  # no such GoogleClient, or the Kubernetes API cannot be read
    NOT_DONE = 3  # handled, but it could not be done (the message says why)
    TIMED_OUT = waiting.TIMED_OUT
    BLOCKED = waiting.BLOCKED  # something must be fixed first (the message says what)


# How long each command waits by default: a requested refresh may wait a minute behind the
# previous one; a re-consent waits for a person (a consent URL lives 15 minutes).
DEFAULT_TIMEOUT_SECONDS = {Request.REFRESH: 150, Request.REAUTHORIZE: 900, Request.REVOKE: 120}

HELP = {
    Request.REFRESH: "refresh the access token now, even if it is fresh",
    Request.REAUTHORIZE: "publish a fresh consent URL; the current grant works until replaced",
    Request.REVOKE: "revoke the grant at Google and remove its tokens",
}
SUMMARIES = {
    Request.REFRESH: "refresh the access token now, even if it is fresh, and wait",
    Request.REAUTHORIZE: (
        "publish a fresh consent URL, print it and wait until the new grant is stored "
        "(the current one keeps working until then)"
    ),
    Request.REVOKE: (
        "revoke the grant at Google, delete the refresh token and the token Secrets, and wait"
    ),
}


@dataclasses.dataclass(frozen=True)
class Asked:
    """A request this command made, and what it has shown of the answer so far."""

    kind: Request
    namespace: str
    name: str
    value: str  # the annotation value written
    started: dt.datetime
    timeout: dt.timedelta
    refreshed_before: str  # status.lastRefreshTime when asked
    shown_url: str = ""
    # status.lastConsentFailure when asked: a different one is this request's.
    known_failure: ConsentFailure | None = None

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def request_value(now: dt.datetime) -> str:
    """A value no earlier request used: the time, to the microsecond."""
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def first_ask(
    kind: Request, body: Mapping[str, Any], value: str, now: dt.datetime, timeout: dt.timedelta
) -> Asked:
    """The request about to be made of the GoogleClient `body` as it reads before asking."""
    meta, status = body["metadata"], body.get("status") or {}
    return Asked(
        kind,
        str(meta.get("namespace") or ""),
        str(meta["name"]),
        value,
        now,
        timeout,
        str(status.get("lastRefreshTime") or ""),
        known_failure=consent_failure_of(status),
    )


def refusal(kind: Request, target: str, status: Any) -> str:
    """Why asking could not help: what a person must fix first (a revoke is never held
    back); "" when the request may go ahead."""
    blocker = blocker_of(status)
    if blocker.kind is Kind.FIX and kind is not Request.REVOKE:
        return waiting.blocked_line(target, blocker)
    return ""


def decide(asked: Asked, body: Body, now: dt.datetime) -> Step[Asked]:
    if body is None:
        return Step(asked, (waiting.not_found(asked.namespace, asked.name),), exit=Exit.FAILED)
    status = body.get("status") or {}
    handled = status.get("handledRequests") or {}
    if isinstance(handled, dict) and handled.get(asked.kind.value) == ack_of(asked.value):
        return outcome(asked, body)
    lines: tuple[str, ...] = ()
    failure = waiting.new_consent_failure(asked.known_failure, body)
    if asked.kind is Request.REAUTHORIZE and failure is not None:
        line = waiting.consent_failure_line(str(asked), failure)
        if failure.reason == Reason.CONSENT_DENIED:
            return not_done(
                asked,
                f"{line} The current grant keeps working. For a new consent URL: "
                f"google-token-operator reauthorize {asked.name} -n {asked.namespace}",
            )
        if failure.reason in FIX_CONSENT_FAILURES:
            return Step(asked, (line,), exit=Exit.BLOCKED)
        lines, asked = (line,), dataclasses.replace(asked, known_failure=failure)
    refused = refusal(asked.kind, str(asked), status)
    if refused:
        return Step(asked, (refused,), exit=Exit.BLOCKED)
    elapsed = now - asked.started
    if elapsed >= asked.timeout:
        return Step(asked, (timeout_message(asked, body, now),), exit=Exit.TIMED_OUT)
    url = read_status(body).url
    if asked.kind is Request.REAUTHORIZE and url and url != asked.shown_url:
        lines += consent_url_lines(read_status(body), renewed=bool(asked.shown_url))
        asked = dataclasses.replace(asked, shown_url=url)
    return Step(asked, lines, f"waiting for {awaited(asked, body, now)}: {format_elapsed(elapsed)}")


def outcome(asked: Asked, body: Mapping[str, Any]) -> Step[Asked]:
    """The request was handled: say what came of it."""
    status = body.get("status") or {}
    client = read_status(body)
    conditions = status.get("conditions")
    ready = find_condition(conditions, READY)
    authorized = find_condition(conditions, AUTHORIZED)
    why = f"Ready is {ready.get('reason', 'unknown')}: {ready.get('message', '')}".rstrip(": ")
    secret = f"Secret {asked.namespace}/{client.token_secret}"
    if asked.kind is Request.REFRESH:
        refreshed = str(status.get("lastRefreshTime") or "")
        if refreshed and refreshed != asked.refreshed_before and ready.get("status") == "True":
            return done(
                asked,
                f"GoogleClient {asked} refreshed: the access token in {secret} is valid until "
                f"{status.get('expiresAt')}.",
            )
        return not_done(asked, f"GoogleClient {asked} was not refreshed. {why}.")
    if asked.kind is Request.REAUTHORIZE:
        if client.authorized:
            return done(
                asked,
                f"New consent stored for GoogleClient {asked} "
                f"(account {client.account or 'not known yet'}); it replaced the previous grant.",
            )
        reason = authorized.get("reason", "unknown")
        return not_done(asked, f"GoogleClient {asked} is not authorized ({reason}). {why}.")
    if authorized.get("reason") == Reason.REVOKED_ON_REQUEST:
        return done(
            asked,
            f"Revoke done: GoogleClient {asked} holds no refresh token any more and its token "
            "Secrets were deleted. To consent again: google-token-operator authorize "
            f"{asked.name} -n {asked.namespace}",
        )
    return not_done(asked, f"GoogleClient {asked}: the revoke was not confirmed. {why}.")


def revoke_at_google(asked: Asked, events: Sequence[Mapping[str, Any]]) -> str:
    """What became of the grant at Google, from the GoogleClient's Events: the operator posts
    RevokeSkipped, naming the request, before the status acknowledges it."""
    prefix = f"Revoke request {asked.value}: "
    for event in events:
        message = str(event.get("message") or "")
        if event.get("reason") == REVOKE_SKIPPED and message.startswith(prefix):
            return message.removeprefix(prefix)
    return "The grant was revoked at Google."


def done(asked: Asked, message: str) -> Step[Asked]:
    return Step(asked, (message,), exit=Exit.DONE)


def not_done(asked: Asked, message: str) -> Step[Asked]:
    return Step(asked, (message,), exit=Exit.NOT_DONE)


def rate_limited_until(asked: Asked, body: Body, now: dt.datetime) -> dt.datetime | None:
    """When a requested refresh may call Google, if that is still ahead (day2.py's limit,
    counted from the current token's issue time)."""
    if asked.kind is not Request.REFRESH:
        return None
    issued = str(((body or {}).get("status") or {}).get("lastRefreshTime") or "")
    try:
        allowed = requested_refresh_at(parse_rfc3339(issued) if issued else None, None)
    except ValueError:
        return None
    return allowed if allowed is not None and allowed > now else None


def awaited(asked: Asked, body: Body, now: dt.datetime) -> str:
    """What the command waits for, and until when if that is known."""
    if asked.shown_url:
        return "a person to consent at the URL above"
    limit = rate_limited_until(asked, body, now)
    if limit is not None:
        return f"the rate limit (one requested refresh a minute) until {format_rfc3339(limit)}"
    return "the operator to acknowledge the request"


def timeout_message(asked: Asked, body: Body, now: dt.datetime) -> str:
    annotation = asked.kind.annotation
    waited = format_elapsed(asked.timeout)
    limit = rate_limited_until(asked, body, now)
    if asked.shown_url:
        why = f"Still waiting for a person to consent at the URL above after {waited}."
    elif limit is not None:
        why = (
            f"Rate-limited until {format_rfc3339(limit)}: a requested refresh calls Google at "
            f"most once a minute, and GoogleClient {asked} was refreshed at "
            f"{(body or {}).get('status', {}).get('lastRefreshTime')}; gave up after {waited}."
        )
    else:
        why = f"Gave up after {waited}. " + waiting.unacknowledged(
            str(asked), asked.namespace, f"the {asked.kind} request"
        )
    return (
        f"{why} The request stays asked and is acted on when the operator can. To withdraw "
        f"it: kubectl annotate googleclient {asked.name} -n {asked.namespace} {annotation}-"
    )


# -- I/O ------------------------------------------------------------------------------------


async def ask_and_wait(kube: Kube, namespace: str, args: argparse.Namespace) -> int:
    kind = Request(args.command)
    body = await kube.get_resource("googleclients", namespace, args.name)
    if body is None:
        print(waiting.not_found(namespace, args.name))
        return Exit.FAILED
    refused = refusal(kind, f"{namespace}/{args.name}", body.get("status"))
    if refused:
        print(refused)  # asking could not help: no request is left behind
        return Exit.BLOCKED
    now = waiting.utc_now()
    asked = first_ask(kind, body, request_value(now), now, dt.timedelta(seconds=args.timeout))
    if await kube.annotate("googleclients", namespace, args.name, {kind.annotation: asked.value}):
        limit = rate_limited_until(asked, body, now)
        note = f" It waits for the rate limit until {format_rfc3339(limit)}." if limit else ""
        print(f"Asked for {kind} of GoogleClient {asked} ({kind.annotation}={asked.value}).{note}")
    exit_status = await waiting.follow(
        lambda: kube.get_resource("googleclients", namespace, args.name),
        decide,
        asked,
        out=sys.stdout,
        clock=waiting.utc_now,
    )
    if kind is Request.REVOKE and exit_status == Exit.DONE:
        with contextlib.suppress(KubeError):  # the Events may not be readable: said nothing
            print(
                revoke_at_google(
                    asked, await kube.list_events(namespace, "GoogleClient", args.name)
                )
            )
    return exit_status


def configure_parser(parser: argparse.ArgumentParser, kind: Request) -> None:
    parser.description = (
        f"Ask the operator to {SUMMARIES[kind]} (sets the annotation {kind.annotation}; the "
        "operator acknowledges it in status.handledRequests). Exit status: 0 done, 1 not found "
        "or Kubernetes unreachable, 3 handled but not done (the message says why), 4 timed out "
        "(the message says what it waited for), 5 blocked (something must be fixed first)."
    )
    waiting.add_target_arguments(
        parser, DEFAULT_TIMEOUT_SECONDS[kind], several=kind is not Request.REVOKE
    )


def run(args: argparse.Namespace) -> int:
    return waiting.run_with_kube(
        args.command,
        args.namespace,
        lambda kube, namespace: ask_and_wait(kube, namespace, args),
        lambda namespace: f"cannot ask GoogleClient {namespace}/{args.name}",
        **waiting.kube_flags(args),
    )
