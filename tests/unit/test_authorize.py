"""`google-token-operator authorize`: what it prints and when it stops, from what it reads."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import io
from collections.abc import Mapping
from typing import Any

import pytest

from google_token_operator.commands.authorize import (
    Exit,
    Watch,
    decide,
    format_elapsed,
    read_status,
    wait_for_authorization,
)
from google_token_operator.commands.cli import build_parser

START = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
TIMEOUT = dt.timedelta(minutes=15)
URL = "https://accounts.google.com/o/oauth2/v2/auth?client_id=c&state=one"
NEW_URL = "https://accounts.google.com/o/oauth2/v2/auth?client_id=c&state=two"


def client(
    *,
    authorized: bool = False,
    reason: str = "ConsentRequired",
    ready: str = "ConsentRequired",
    url: str | None = None,
    expires_at: dt.datetime = START + TIMEOUT,
    fingerprint: str = "fp-1",
    email: str | None = None,
    status_extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A GoogleClient as the operator leaves it."""
    status: dict[str, Any] = {
        "conditions": [
            {"type": "Authorized", "status": str(authorized), "reason": reason, "message": ""},
            {"type": "Ready", "status": str(authorized), "reason": ready, "message": "why"},
        ],
        "tokenSecretName": "acme-google-token",
        **(status_extra or {}),
    }
    if url:
        status["authorization"] = {
            "url": url,
            "expiresAt": expires_at.isoformat().replace("+00:00", "Z"),
            "fingerprint": fingerprint,
        }
    if email:
        status["account"] = {"email": email}
    return {"metadata": {"name": "acme", "namespace": "reviews"}, "spec": {}, "status": status}


def start() -> Watch:
    return Watch("reviews", "acme", started=START, timeout=TIMEOUT)


def after(seconds: float) -> dt.datetime:
    return START + dt.timedelta(seconds=seconds)


def shown(url: str = URL, *, denied_before: bool = False) -> Watch:
    """A watch that has printed `url`."""
    reason = "ConsentDenied" if denied_before else "ConsentRequired"
    decision = decide(start(), client(url=url, reason=reason), after(1))
    assert decision.watch.shown is not None
    return decision.watch


def test_a_missing_client_fails_with_how_to_list_them() -> None:
    decision = decide(start(), None, START)

    assert decision.exit is Exit.FAILED
    assert decision.lines == (
        "GoogleClient acme not found in namespace reviews; "
        "`kubectl get googleclients -n reviews` lists the ones there.",
    )


def test_an_authorized_client_is_reported_at_once() -> None:
    decision = decide(start(), client(authorized=True, reason="Authorized", email="o@x.com"), START)

    assert decision.exit is Exit.AUTHORIZED
    assert decision.lines == (
        "GoogleClient reviews/acme is already authorized.",
        "  account:       o@x.com",
        "  access token:  Secret reviews/acme-google-token",
    )


def test_waiting_for_the_url_is_explained_once_after_two_seconds() -> None:
    quick = decide(start(), client(), after(1))
    slow = decide(quick.watch, client(), after(3))
    later = decide(slow.watch, client(), after(4))

    assert quick.lines == ()
    assert quick.status_line == (
        "waiting for the operator to publish a consent URL: 1s elapsed, Ready: ConsentRequired"
    )
    assert slow.lines == ("waiting for the operator to publish a consent URL…",)
    assert later.lines == ()
    assert later.exit is None


def test_the_url_is_printed_once_with_its_expiry() -> None:
    first = decide(start(), client(url=URL), after(1))
    again = decide(first.watch, client(url=URL), after(2))

    assert first.lines == (
        "Open this URL in a browser and approve access (it expires at 2026-01-05T09:15:00Z):",
        "",
        f"    {URL}",
        "",
    )
    assert again.lines == ()
    assert again.status_line == (
        "waiting for a person to consent at the URL above (until 2026-01-05T09:15:00Z): "
        "2s elapsed, Ready: ConsentRequired"
    )


def test_after_consent_the_account_and_the_secret_are_printed() -> None:
    decision = decide(shown(), client(authorized=True, reason="Authorized", email="o@x.com"), START)

    assert decision.exit is Exit.AUTHORIZED
    assert decision.lines[0] == "GoogleClient reviews/acme is authorized."
    assert "o@x.com" in decision.lines[1]


def test_an_account_without_a_known_email_is_still_reported() -> None:
    decision = decide(shown(), client(authorized=True, reason="Authorized"), START)

    assert decision.lines[1] == "  account:       (e-mail not known yet)"


def test_a_denial_at_the_shown_url_stops_with_exit_3() -> None:
    decision = decide(shown(), client(url=NEW_URL, reason="ConsentDenied"), after(30))

    assert decision.exit is Exit.DENIED
    assert "denied at Google; nothing was stored" in decision.lines[0]


def test_an_earlier_denial_does_not_stop_the_new_attempt() -> None:
    watch = shown(denied_before=True)

    decision = decide(watch, client(url=URL, reason="ConsentDenied"), after(30))

    assert decision.exit is None


def test_after_an_earlier_denial_a_spent_url_means_denied_again() -> None:
    watch = shown(denied_before=True)

    decision = decide(watch, client(url=NEW_URL, reason="ConsentDenied"), after(30))

    assert decision.exit is Exit.DENIED


@pytest.mark.parametrize(
    ("reading", "now"),
    [
        # The shown URL expired at START + 15 min; the operator published another.
        (client(url=NEW_URL, reason="ConsentDenied", expires_at=after(1800)), after(900)),
        # The spec changed what consent asks for, which voids the pending URL.
        (client(url=NEW_URL, reason="ConsentDenied", fingerprint="fp-2"), after(30)),
    ],
    ids=["expired", "settings-changed"],
)
def test_a_renewed_url_is_printed_and_is_no_denial(
    reading: dict[str, Any], now: dt.datetime
) -> None:
    watch = dataclasses.replace(shown(denied_before=True), timeout=dt.timedelta(hours=1))

    decision = decide(watch, reading, now)

    assert decision.exit is None
    assert decision.lines[0].startswith("A new consent URL was published")
    assert decision.lines[2] == f"    {NEW_URL}"
    assert decision.watch.shown is not None
    assert decision.watch.shown.url == NEW_URL


def test_timeout_without_a_url_points_at_the_operator() -> None:
    decision = decide(start(), client(ready="RefreshDelayed"), after(900))

    assert decision.exit is Exit.TIMED_OUT
    message = decision.lines[0]
    assert "No consent URL appeared for GoogleClient reviews/acme within 15m00s" in message
    assert "operator runs and watches namespace reviews" in message
    assert "Ready: RefreshDelayed (why)" in message


def test_a_blocker_to_fix_ends_the_wait_at_once_naming_it() -> None:
    decision = decide(start(), client(ready="CredentialsSecretNotFound"), after(1))

    assert decision.exit is Exit.BLOCKED
    assert decision.lines == (
        "GoogleClient reviews/acme is blocked (CredentialsSecretNotFound): why. Waiting cannot "
        "help; the operator goes on by itself once this is fixed.",
    )


def test_no_status_is_an_operator_that_has_not_looked_at_it() -> None:
    unseen = {"metadata": {"name": "acme", "namespace": "reviews"}, "spec": {}}
    slow = decide(start(), unseen, after(3))
    late = decide(slow.watch, unseen, after(900))

    assert slow.lines[0].startswith("GoogleClient reviews/acme: no operator has reported on")
    assert late.exit is Exit.TIMED_OUT
    assert late.lines[0].startswith(
        "Gave up after 15m00s. The operator has not acknowledged anything for "
        "GoogleClient reviews/acme: is it running and watching namespace reviews?"
    )


def consent_failed(reason: str, at: dt.datetime) -> dict[str, Any]:
    return client(
        url=URL,
        status_extra={"lastConsentFailure": {"reason": reason, "time": at.isoformat()}},
    )


@pytest.mark.parametrize(
    ("reason", "exit", "advice"),
    [
        ("ClientCredentialsInvalid", Exit.BLOCKED, "fix client_id/client_secret"),
        ("RedirectURIMismatch", Exit.BLOCKED, "match it exactly"),
        ("ConsentDenied", Exit.DENIED, "Run this command again"),
        ("ConsentCodeInvalid", None, "open the new consent URL"),
    ],
)
def test_a_consent_failure_after_the_start_ends_the_wait_or_is_reported(
    reason: str, exit: Exit | None, advice: str
) -> None:
    earlier = decide(start(), consent_failed("ConsentDenied", START), after(1))
    same = decide(earlier.watch, consent_failed("ConsentDenied", START), after(2))
    new = decide(earlier.watch, consent_failed(reason, after(3)), after(4))

    assert (earlier.exit, earlier.lines[0]) == (None, client_url_intro())
    assert same.exit is None and same.lines == ()
    assert new.exit is exit
    assert new.lines[0].startswith(
        f"The consent for GoogleClient reviews/acme failed at 2026-01-05T09:00:03Z ({reason}): "
    )
    assert advice in new.lines[0]


def client_url_intro() -> str:
    return "Open this URL in a browser and approve access (it expires at 2026-01-05T09:15:00Z):"


def test_timeout_after_the_url_points_at_the_consent_and_the_callback() -> None:
    decision = decide(shown(), client(url=URL), after(900))

    assert decision.exit is Exit.TIMED_OUT
    message = decision.lines[0]
    assert "GoogleClient reviews/acme was not authorized within 15m00s" in message
    assert "CALLBACK_URL" in message
    assert "kubectl describe googleclient acme -n reviews" in message


def test_read_status_falls_back_to_the_default_secret_name() -> None:
    body = client()
    del body["status"]["tokenSecretName"]

    assert read_status(body).token_secret == "acme-google-token"
    spec_only = read_status({"metadata": {"name": "x"}, "spec": {"tokenSecretName": "mine"}})
    assert spec_only.token_secret == "mine"
    assert spec_only.authorized is False
    assert spec_only.url == ""


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (59.9, "59s"), (60, "1m00s"), (905, "15m05s")]
)
def test_format_elapsed(seconds: float, text: str) -> None:
    assert format_elapsed(dt.timedelta(seconds=seconds)) == text


# -- the loop ---------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class FakeTime:
    """A clock that only moves when the loop sleeps."""

    def __init__(self) -> None:
        self.now = START
        self.sleeps: list[float] = []

    def clock(self) -> dt.datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += dt.timedelta(seconds=seconds)


def run_loop(stream: io.StringIO, *bodies: dict[str, Any] | None) -> tuple[Exit, FakeTime]:
    time = FakeTime()
    fetched = iter(bodies)

    async def fetch() -> dict[str, Any] | None:
        return next(fetched)

    result = asyncio.run(
        wait_for_authorization(
            fetch,
            "reviews",
            "acme",
            TIMEOUT,
            out=stream,
            clock=time.clock,
            sleep=time.sleep,
        )
    )
    return result, time


def test_the_loop_polls_every_second_until_authorized() -> None:
    out = io.StringIO()

    result, time = run_loop(
        out,
        client(),
        client(url=URL),
        client(url=URL),
        client(authorized=True, reason="Authorized", email="o@x.com"),
    )

    assert result is Exit.AUTHORIZED
    assert time.sleeps == [1.0, 1.0, 1.0]
    assert out.getvalue() == (
        "Open this URL in a browser and approve access (it expires at 2026-01-05T09:15:00Z):\n"
        f"\n    {URL}\n\n"
        "GoogleClient reviews/acme is authorized.\n"
        "  account:       o@x.com\n"
        "  access token:  Secret reviews/acme-google-token\n"
    )


def test_on_a_terminal_the_progress_line_is_rewritten_in_place_and_cleared() -> None:
    out = Terminal()

    result, _ = run_loop(out, client(url=URL), client(url=URL, ready="RefreshDelayed"), None)

    assert result is Exit.FAILED
    text = out.getvalue()
    waiting = "waiting for a person to consent at the URL above (until 2026-01-05T09:15:00Z)"
    assert f"\r{waiting}: 0s elapsed, Ready: ConsentRequired" in text
    assert f"\r{waiting}: 1s elapsed, Ready: RefreshDelayed" in text
    # The progress line is wiped before the final message, which starts on a clean line.
    assert "\r" + " " * len(f"{waiting}: 1s elapsed, Ready: RefreshDelayed") in text
    assert text.endswith(
        "\rGoogleClient acme not found in namespace reviews; "
        "`kubectl get googleclients -n reviews` lists the ones there.\n"
    )


def test_the_command_line() -> None:
    parser = build_parser()

    args = parser.parse_args(["authorize", "acme", "-n", "reviews"])
    custom = parser.parse_args(["authorize", "acme", "--timeout", "60"])

    assert (args.name, args.namespace, args.timeout) == ("acme", "reviews", 900)
    assert (custom.namespace, custom.timeout) == (None, 60)
    for bad in ("0", "-5", "soon"):
        with pytest.raises(SystemExit):
            parser.parse_args(["authorize", "acme", "--timeout", bad])
