"""The kubectl-like command line (pure): flags before or after the command, the plugin's
commands, version, -o wide|yaml, `status NAME`, the frames of --watch, --all/-l."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from google_token_operator.commands import about, detail, formats, selection, waiting
from google_token_operator.commands.cli import build_parser, main
from google_token_operator.commands.status_command import branch_row, client_row
from google_token_operator.kube import KubeError

NOW = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
BLOCKED = "Secret reviews/acme-oauth (spec.credentialsSecretRef) does not exist: create it"


def client() -> dict[str, Any]:
    return {
        "metadata": {"name": "acme", "namespace": "reviews", "resourceVersion": "7"},
        "spec": {"credentialsSecretRef": {"name": "acme-oauth"}},
        "status": {
            "conditions": [
                {"type": "Authorized", "status": "True", "reason": "Authorized", "message": "ok"},
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "CredentialsSecretNotFound",
                    "message": BLOCKED,
                    "lastTransitionTime": "2026-01-05T08:59:00Z",
                },
            ],
            "account": {"email": "owner@example.com"},
            "expiresAt": "2026-01-05T09:42:10Z",
            "lastRefreshTime": "2026-01-05T08:42:10Z",
            "nextRefreshTime": "2026-01-05T09:21:00Z",
            "failedRefreshAttempts": 2,
            "tokenSecretName": "acme-google-token",
        },
    }


def branch(name: str, client_name: str = "acme") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "reviews"},
        "spec": {"clientRef": {"name": client_name}, "accountId": "1", "locationId": "2"},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}]},
    }


# -- parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["-n", "reviews", "status"],
        ["status", "-n", "reviews"],
        ["--context", "one", "-n", "other", "status", "-n", "reviews"],
    ],
)
def test_the_namespace_goes_before_or_after_the_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert (args.command, args.namespace, args.all_namespaces) == ("status", "reviews", False)


def test_kubeconfig_and_context_go_before_or_after_the_command() -> None:
    before = build_parser().parse_args(["--kubeconfig", "k.yaml", "--context", "c", "refresh", "a"])
    after = build_parser().parse_args(["refresh", "a", "--kubeconfig", "k.yaml", "--context", "c"])
    plain = build_parser().parse_args(["authorize", "a"])
    for args in (before, after):
        assert (args.kubeconfig, args.context, args.name) == ("k.yaml", "c", "a")
    assert (plain.kubeconfig, plain.context, plain.namespace) == (None, None, None)
    assert build_parser().parse_args(["-A", "status"]).all_namespaces


def test_the_operator_commands_take_their_flags_after_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv in (["-n", "reviews", "run"], ["--kubeconfig", "k", "callback"], ["-A", "run"]):
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        assert stopped.value.code == 2
        assert "came before it" in capsys.readouterr().err
    args = build_parser().parse_args(["run", "-n", "a", "-n", "b"])
    assert (args.namespace, args.all_namespaces) == (["a", "b"], False)


def test_the_plugin_offers_only_the_user_commands(capsys: pytest.CaptureFixture[str]) -> None:
    plugin = build_parser("kubectl google-token")
    with pytest.raises(SystemExit):
        plugin.parse_args(["run"])
    assert "invalid choice: 'run'" in capsys.readouterr().err
    usage = plugin.format_help()
    assert "callback" not in usage and "run the operator" not in usage
    commands = ("authorize", "refresh", "reauthorize", "revoke", "status", "migrate-storage")
    for command in (*commands, "version"):
        assert command in usage
    assert build_parser().parse_args(["run"]).command == "run"


def test_all_and_selector_name_the_clients_of_refresh_and_reauthorize() -> None:
    parse = build_parser().parse_args
    assert selection.check(parse(["refresh", "--all"])) == ""
    assert selection.check(parse(["reauthorize", "-l", "team=a"])) == ""
    assert selection.check(parse(["refresh", "acme"])) == ""
    for argv in (["refresh"], ["refresh", "acme", "--all"], ["refresh", "--all", "-l", "a=b"]):
        assert "only one of them" in selection.check(parse(argv))
    with pytest.raises(SystemExit):
        parse(["revoke", "--all"])  # revoking every grant at once is not offered


def test_a_misnamed_selection_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["refresh", "acme", "-l", "team=a"])
    assert stopped.value.code == 2
    assert "name one GoogleClient, or --all, or -l SELECTOR" in capsys.readouterr().err


def test_version_names_the_release_the_api_and_the_build(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["version"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[1] == "API version: google-token-operator.dev/v1"
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out == text
    assert main(["version", "-o", "yaml"]) == 0
    facts = yaml.safe_load(capsys.readouterr().out)
    assert facts == about.facts() and facts["build"]["python"].startswith("CPython 3.")


# -- formats --------------------------------------------------------------------------------


def test_wide_shows_next_refresh_and_the_whole_blocking_message() -> None:
    rows = [client_row(client(), NOW)]
    wide = formats.render_list("wide", rows, [branch_row(branch("downtown"))], NOW, False)
    table = formats.render_list("table", rows, [], NOW, False)
    header = wide.splitlines()[1]
    for column in ("AUTHORIZED", "EXPIRES AT", "NEXT REFRESH", "SECRET", "MESSAGE"):
        assert column in header
    assert BLOCKED in wide and "in 21m" in wide
    assert BLOCKED not in table  # the table keeps to its columns
    assert "accounts/1/locations/2" in wide


@pytest.mark.parametrize("output", ["json", "yaml"])
def test_json_and_yaml_hold_the_same_document(output: str) -> None:
    text = formats.render_list(output, [client_row(client(), NOW)], [], NOW, False)
    document = json.loads(text) if output == "json" else yaml.safe_load(text)
    [shown] = document["clients"]
    assert (shown["name"], shown["message"], shown["nextRefreshTime"]) == (
        "acme",
        BLOCKED,
        "2026-01-05T09:21:00Z",
    )


class Pipe(io.StringIO):
    def __init__(self, tty: bool = False) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


async def shown(frames: list[formats.Frame], output: str, watch: bool, tty: bool = False) -> str:
    out = Pipe(tty)
    pending: Iterator[formats.Frame] = iter(frames)

    async def read() -> formats.Frame:
        return next(pending)

    async def no_sleep(_: float) -> None:
        return None

    code = await formats.show(read, output, watch, out=out, sleep=no_sleep)
    return f"{code}|{out.getvalue()}"


async def test_watch_prints_each_change_until_it_ends() -> None:
    frames = [
        formats.Frame("a: Pending", ("1",)),
        formats.Frame("a: Pending", ("1",)),  # nothing changed: nothing printed
        formats.Frame("a: Ready", ("2",)),
        formats.Frame("gone", exit=1),
    ]
    assert await shown(frames, "table", True) == "1|a: Pending\n\na: Ready\n\ngone\n\n"
    assert await shown(frames, "yaml", True) == "1|---\na: Pending\n---\na: Ready\n---\ngone\n"
    # A terminal is redrawn on every reading; without --watch one frame is all.
    redrawn = await shown(frames, "table", True, tty=True)
    assert redrawn.count(formats.CLEAR) == 4
    assert await shown(frames, "table", False) == "0|a: Pending\n"


# -- status NAME ----------------------------------------------------------------------------


def detail_view() -> dict[str, Any]:
    secrets = {
        "acme-oauth": None,
        "acme-google-oauth": {
            "metadata": {"labels": {"app.kubernetes.io/managed-by": "google-token-operator"}},
            "data": {"refresh_token": "c2VjcmV0LXJlZnJlc2g="},
        },
        "acme-google-token": {"metadata": {}, "data": {"access_token": "c2VjcmV0"}},
    }
    events = [
        {"type": "Warning", "reason": "Late", "message": "second", "lastTimestamp": "T2"},
        {"type": "Normal", "reason": "Early", "message": "first", "lastTimestamp": "T1"},
    ]
    branches = [branch("uptown"), branch("downtown")]
    return detail.describe(client(), secrets, branches, events, NOW)


def test_the_detail_view_holds_conditions_token_times_secrets_branches_events() -> None:
    view = detail_view()
    assert [c["type"] for c in view["conditions"]] == ["Authorized", "Ready"]
    assert view["token"]["nextRefreshTime"] == "2026-01-05T09:21:00Z"
    assert view["token"]["failedRefreshAttempts"] == 2
    assert [(s["role"], s["name"], s["exists"]) for s in view["secrets"]] == [
        ("credentials", "acme-oauth", False),
        ("private", "acme-google-oauth", True),
        ("token", "acme-google-token", True),
    ]
    assert view["secrets"][1]["keys"] == ["refresh_token"] and view["secrets"][1]["managed"]
    assert [b["name"] for b in view["branches"]] == ["downtown", "uptown"]
    assert [e["reason"] for e in view["events"]] == ["Early", "Late"]

    text = "\n".join(detail.render(view, NOW))
    assert "GoogleClient reviews/acme" in text
    assert f"message:        {BLOCKED}" in text
    assert "next refresh:   2026-01-05T09:21:00Z (in 21m)" in text
    assert "credentials  acme-oauth         missing" in text
    assert "Warning  Late" in text
    # Key names only: never a value, encoded or not.
    for secret in ("c2VjcmV0", "secret-refresh", "c2VjcmV0LXJlZnJlc2g="):
        assert secret not in text and secret not in json.dumps(view)


def test_the_detail_view_of_a_new_client_says_what_is_not_there_yet() -> None:
    bare = {"metadata": {"name": "new", "namespace": "reviews"}, "spec": {}}
    view = detail.describe(bare, {"new-google-oauth": None}, [], [], NOW)
    text = "\n".join(detail.render(view, NOW))
    assert "(none reported yet)" in text and "Events:\n  (none)" in text
    assert [s["role"] for s in view["secrets"]] == ["private", "token"]
    assert "private  new-google-oauth  missing" in text
    # What RBAC hides (kubectl's view role reads no Secret, maybe no Event) is said so.
    assert "token    new-google-token  not readable" in text
    hidden = detail.render(detail.describe(bare, {}, [], None, NOW), NOW)
    assert hidden[-1] == f"  {detail.NOT_READABLE}"


def test_the_status_parser_takes_a_name_and_the_formats(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = build_parser().parse_args(["status", "acme", "-o", "yaml", "--watch"])
    assert (args.name, args.output, args.watch) == ("acme", "yaml", True)
    assert main(["-A", "status", "acme"]) == 2
    assert "-n, not -A" in capsys.readouterr().err


async def test_a_refusal_by_rbac_is_told_apart_from_a_failure() -> None:
    async def answer(status: int) -> dict[str, Any]:
        raise KubeError(status, "Forbidden" if status == 403 else "InternalError")

    with pytest.raises(detail.Forbidden):
        await detail.allowed(answer(403))
    with pytest.raises(KubeError):
        await detail.allowed(answer(500))


# A tenant's message that would set the window title, clear the screen and start a sequence
# with the one-byte C1 CSI.
HOSTILE = "ok\x1b]0;pwned\x07\x1b[2J\r\x9b31mred\x7f"


@pytest.mark.parametrize("output", ["table", "wide"])
@pytest.mark.parametrize("watch", [False, True])
def test_text_from_the_cluster_reaches_the_terminal_without_control_characters(
    output: str, watch: bool
) -> None:
    shown = formats.frame_text(formats.Frame(f"acme  {HOSTILE}\nnext"), output, watch, live=False)
    assert shown.startswith("acme  ok\\x1b]0;pwned\\x07\\x1b[2J\\x0d\\x9b31mred\\x7f\nnext")
    assert not any((ord(c) < 0x20 and c not in "\t\n") or 0x7F <= ord(c) <= 0x9F for c in shown)


def test_a_watched_terminal_is_still_cleared_and_json_keeps_its_own_escapes() -> None:
    assert formats.frame_text(formats.Frame(HOSTILE), "table", True, live=True).startswith(
        formats.CLEAR + "ok\\x1b"
    )
    document = formats.dump("json", {"message": HOSTILE})
    assert formats.frame_text(formats.Frame(document), "json", False, live=False) == document
    assert json.loads(document)["message"] == HOSTILE  # the JSON reader gets the real text


def test_the_waiting_commands_print_lines_from_the_cluster_made_visible() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    console = waiting.Console(stream)
    console.show(waiting.Step(None, lines=(f"Ready=False: {HOSTILE}",), status_line=HOSTILE))
    console.close()
    written = stream.getvalue()
    assert "\x1b" not in written and "\x9b" not in written and "\x07" not in written
    assert "Ready=False: ok\\x1b]0;pwned" in written
