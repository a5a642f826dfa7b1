"""`google-token-operator refresh|reauthorize|revoke`: what each prints and when it stops,
from what it reads; and the command's name as a kubectl plugin."""

from __future__ import annotations

import datetime as dt
from typing import Any

from google_token_operator.commands.cli import build_parser, program_name
from google_token_operator.commands.request_commands import (
    Asked,
    Exit,
    decide,
    first_ask,
    refusal,
    request_value,
)
from google_token_operator.day2 import Request

START = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
URL = "https://accounts.google.com/o/oauth2/v2/auth?client_id=c&state=one"


def asked(kind: Request, timeout: int = 120) -> Asked:
    return Asked(
        kind, "reviews", "acme", "v1", START, dt.timedelta(seconds=timeout), "2026-01-05T08:50:00Z"
    )


def client(
    *,
    handled: dict[str, str] | None = None,
    authorized: tuple[str, str] = ("True", "Authorized"),
    ready: tuple[str, str] = ("True", "TokenValid"),
    refreshed: str = "2026-01-05T08:50:00Z",
    url: str = "",
    email: str = "owner@example.com",
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "conditions": [
            {"type": "Authorized", "status": authorized[0], "reason": authorized[1]},
            {"type": "Ready", "status": ready[0], "reason": ready[1], "message": "why"},
        ],
        "lastRefreshTime": refreshed,
        "expiresAt": "2026-01-05T10:00:00Z",
        "account": {"email": email},
        "tokenSecretName": "acme-google-token",
    }
    if handled:
        status["handledRequests"] = handled
    if url:
        status["authorization"] = {"url": url, "expiresAt": "2026-01-05T09:15:00Z"}
    return {"metadata": {"name": "acme", "namespace": "reviews"}, "status": status}


def test_request_values_differ_to_the_microsecond() -> None:
    assert request_value(START) == "2026-01-05T09:00:00.000000Z"
    assert request_value(START + dt.timedelta(microseconds=1)) != request_value(START)


def test_it_waits_until_its_own_value_is_acknowledged() -> None:
    step = decide(asked(Request.REFRESH), client(handled={"refresh": "older"}), START)
    assert step.exit is None
    assert step.status_line == "waiting for the operator to acknowledge the request: 0s"


def test_a_refresh_reports_the_new_expiry() -> None:
    body = client(handled={"refresh": "v1"}, refreshed="2026-01-05T09:00:30Z")
    step = decide(asked(Request.REFRESH), body, START)
    assert step.exit is Exit.DONE
    assert step.lines == (
        "GoogleClient reviews/acme refreshed: the access token in Secret "
        "reviews/acme-google-token is valid until 2026-01-05T10:00:00Z.",
    )


def test_a_refresh_that_could_not_run_says_why() -> None:
    body = client(
        handled={"refresh": "v1"},
        authorized=("False", "ConsentRequired"),
        ready=("False", "ConsentRequired"),
    )
    step = decide(asked(Request.REFRESH), body, START)
    assert step.exit is Exit.NOT_DONE
    assert step.lines[0].startswith("GoogleClient reviews/acme was not refreshed. Ready is ")
    assert "ConsentRequired: why" in step.lines[0]


def test_a_reauthorize_prints_the_url_once_and_reports_the_new_account() -> None:
    step = decide(asked(Request.REAUTHORIZE), client(url=URL), START)
    assert step.exit is None
    assert step.lines[2] == f"    {URL}"
    assert step.watch.shown_url == URL
    again = decide(step.watch, client(url=URL), START + dt.timedelta(seconds=1))
    assert again.lines == ()
    assert again.status_line == "waiting for a person to consent at the URL above: 1s"
    renewed = decide(step.watch, client(url=URL + "2"), START + dt.timedelta(seconds=2))
    assert renewed.lines[0].startswith("A new consent URL was published")

    done = decide(step.watch, client(handled={"reauthorize": "v1"}, email="new@example.com"), START)
    assert done.exit is Exit.DONE
    assert "account new@example.com" in done.lines[0]


def test_a_revoke_reports_what_is_gone_and_how_to_consent_again() -> None:
    body = client(
        handled={"revoke": "v1"},
        authorized=("False", "RevokedOnRequest"),
        ready=("False", "RevokedOnRequest"),
    )
    step = decide(asked(Request.REVOKE), body, START)
    assert step.exit is Exit.DONE
    assert "holds no refresh token" in step.lines[0]
    assert "google-token-operator authorize acme -n reviews" in step.lines[0]


def test_a_missing_client_and_a_timeout_have_their_exit_codes() -> None:
    gone = decide(asked(Request.REVOKE), None, START)
    assert gone.exit is Exit.FAILED == 1
    assert "acme not found in namespace reviews" in gone.lines[0]
    late = decide(asked(Request.REVOKE, timeout=10), client(), START + dt.timedelta(seconds=10))
    assert late.exit is Exit.TIMED_OUT == 4
    assert "google-token-operator.dev/revoke-requested-at-" in late.lines[0]


def test_the_commands_parse_like_authorize() -> None:
    for command in ("refresh", "reauthorize", "revoke"):
        args = build_parser().parse_args([command, "acme", "-n", "reviews", "--timeout", "5"])
        assert (args.command, args.name, args.namespace, args.timeout) == (
            command,
            "acme",
            "reviews",
            5,
        )
    args = build_parser().parse_args(["status", "-A", "-o", "json"])
    assert args.all_namespaces and args.output == "json"


def test_as_a_kubectl_plugin_the_command_is_kubectl_google_token() -> None:
    assert program_name("/usr/local/bin/kubectl-google_token") == "kubectl google-token"
    assert program_name("/venv/bin/google-token-operator") == "google-token-operator"
    assert (
        build_parser("kubectl google-token")
        .format_usage()
        .startswith("usage: kubectl google-token")
    )


def test_a_refresh_inside_the_rate_limit_says_until_when_it_waits() -> None:
    body = client(refreshed="2026-01-05T08:59:40Z")
    step = decide(asked(Request.REFRESH, timeout=5), body, START + dt.timedelta(seconds=2))
    late = decide(asked(Request.REFRESH, timeout=5), body, START + dt.timedelta(seconds=5))

    limit = "2026-01-05T09:00:40Z"
    assert step.status_line == (
        f"waiting for the rate limit (one requested refresh a minute) until {limit}: 2s"
    )
    assert late.exit is Exit.TIMED_OUT
    assert late.lines[0].startswith(f"Rate-limited until {limit}: a requested refresh calls")


def test_a_refresh_nobody_acknowledges_names_the_operator() -> None:
    late = decide(asked(Request.REFRESH, timeout=5), client(), START + dt.timedelta(seconds=5))

    assert late.exit is Exit.TIMED_OUT
    assert late.lines[0].startswith(
        "Gave up after 5s. The operator has not acknowledged the refresh request for "
        "GoogleClient reviews/acme: is it running and watching namespace reviews?"
    )


def test_a_blocked_client_ends_the_wait_at_once() -> None:
    body = client(ready=("False", "SecretConflict"))
    step = decide(asked(Request.REAUTHORIZE), body, START)

    assert step.exit is Exit.BLOCKED
    assert step.lines[0].startswith("GoogleClient reviews/acme is blocked (SecretConflict): why.")


def test_a_reauthorize_denied_after_it_was_asked_is_not_done() -> None:
    body = client(url=URL)
    body["status"]["lastConsentFailure"] = {
        "reason": "ConsentDenied",
        "time": "2026-01-05T09:00:05Z",
    }
    step = decide(asked(Request.REAUTHORIZE), body, START + dt.timedelta(seconds=6))

    assert step.exit is Exit.NOT_DONE
    assert step.lines[0].startswith(
        "The consent for GoogleClient reviews/acme failed at 2026-01-05T09:00:05Z "
        "(ConsentDenied): consent was denied at Google; nothing was stored. The current grant "
        "keeps working."
    )


def test_a_consent_failure_from_before_the_ask_does_not_end_a_reauthorize() -> None:
    """Each ask (one NAME, --all or -l) starts from the failure already recorded: only a
    later one is its own."""
    body = client(url=URL)
    body["status"]["lastConsentFailure"] = {
        "reason": "ConsentDenied",
        "time": "2026-01-05T08:00:00Z",
    }
    one = first_ask(Request.REAUTHORIZE, body, "v1", START, dt.timedelta(seconds=120))

    assert (str(one), one.refreshed_before) == ("reviews/acme", "2026-01-05T08:50:00Z")
    step = decide(one, body, START + dt.timedelta(seconds=6))
    assert step.exit is None
    assert step.lines[0].startswith("Open this URL")


def test_a_client_blocked_by_what_a_person_must_fix_is_not_asked_but_may_be_revoked() -> None:
    status = client(ready=("False", "CredentialsSecretNotFound"))["status"]

    for kind in (Request.REFRESH, Request.REAUTHORIZE):
        assert refusal(kind, "reviews/acme", status).startswith(
            "GoogleClient reviews/acme is blocked (CredentialsSecretNotFound): why."
        )
    assert refusal(Request.REVOKE, "reviews/acme", status) == ""
    assert refusal(Request.REFRESH, "reviews/acme", client()["status"]) == ""
