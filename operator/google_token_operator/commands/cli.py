"""The `google-token-operator` command (also `kubectl google-token`): run, callback,
authorize, refresh, reauthorize, revoke, status, migrate-storage, version, completion."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from ..consent_state.contract import CONSENT_PORT
from ..settings import Settings, SettingsError
from . import about

PLUGIN = "kubectl google-token"


def build_parser(prog: str = "google-token-operator") -> argparse.ArgumentParser:
    """As a kubectl plugin only the user commands (no `run`, no `callback`). The kubeconfig
    options and -n are taken before the command too, as kubectl takes them
    (`kubectl google-token -n NS status`)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Keeps Google OAuth access tokens fresh in Kubernetes Secrets.",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # --version keeps its lines
    )
    parser.add_argument("--version", action="version", version=about.version_text())
    add_kube_arguments(parser, None)
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", action=BeforeCommand, help="the namespace of the command"
    )
    scope.add_argument(
        "-A",
        "--all-namespaces",
        action=BeforeCommand,
        nargs=0,
        default=False,
        help="every namespace (status)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if prog != PLUGIN:
        add_operator_commands(commands)

    from ..day2 import Request
    from . import authorize, completion, migrate_storage, request_commands, status_command

    authorize.configure_parser(
        user_command(
            commands,
            "authorize",
            "print a GoogleClient's consent URL and wait until it is authorized",
        )
    )
    for kind in Request:
        request_commands.configure_parser(
            user_command(commands, kind.value, request_commands.HELP[kind]), kind
        )
    status_command.configure_parser(
        user_command(
            commands, "status", "show GoogleClients and Branches at a glance, or one in detail"
        )
    )
    migrate_storage.configure_parser(
        user_command(
            commands,
            "migrate-storage",
            "after an upgrade: store every GoogleClient and Branch at the newest API version",
        )
    )
    about.configure_parser(
        commands.add_parser("version", help="print the version, the API version and the build")
    )
    completion.configure_parser(
        commands.add_parser("completion", help="print a shell completion script (bash|zsh|fish)")
    )
    return parser


def add_operator_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser("run", help="run the operator (kopf) against the current cluster")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)"
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch all namespaces")
    run.add_argument("--metrics-port", type=int, default=9090, help="Prometheus port (0: off)")
    run.add_argument(
        "--consent-port",
        type=int,
        default=CONSENT_PORT,
        help="internal consent API for the callback",
    )
    run.add_argument("--liveness-port", type=int, default=8081, help="kopf liveness probe port")
    run.add_argument(
        "--leader-election",
        action="store_true",
        help="hold a Lease so only one replica acts (run two or more replicas with it)",
    )
    run.add_argument("--verbose", action="store_true", help="log at DEBUG")

    from ..consent.callback import serve as callback_cli

    callback_cli.configure_parser(
        commands.add_parser(
            "callback", help="serve the OAuth consent callback (GET /oauth2/callback)"
        )
    )


def user_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help: str
) -> argparse.ArgumentParser:
    """A command that talks to the cluster: the kubeconfig options after it too. Its own
    defaults are suppressed so that what came before the command is kept."""
    parser = commands.add_parser(name, help=help)
    add_kube_arguments(parser, argparse.SUPPRESS)
    return parser


class BeforeCommand(argparse.Action):
    """A flag before the command: kept (nargs=0: True), and remembered as given there, for
    `run` and `callback` take theirs after them only (their own -n would override it)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, True if self.nargs == 0 else values)
        namespace.before_command = [*getattr(namespace, "before_command", []), option_string]


def add_kube_arguments(parser: argparse.ArgumentParser, default: str | None) -> None:
    action: type[argparse.Action] | str = BeforeCommand if default is None else "store"
    group = parser.add_argument_group("cluster")
    group.add_argument(
        "--kubeconfig",
        action=action,
        default=default,
        metavar="FILE",
        help="the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)",
    )
    group.add_argument(
        "--context",
        action=action,
        default=default,
        help="the kubeconfig context (default: its current context)",
    )


def program_name(argv0: str) -> str:
    """As a kubectl plugin (an executable named kubectl-google_token) the command is
    `kubectl google-token`."""
    if os.path.basename(argv0).startswith("kubectl-"):
        return PLUGIN
    return "google-token-operator"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(program_name(sys.argv[0]))
    args = parser.parse_args(argv)
    if args.command in ("run", "callback") and getattr(args, "before_command", None):
        flags = ", ".join(args.before_command)
        parser.error(f"{args.command} takes its flags after it ({flags} came before it)")
    if args.command == "version":
        return about.run(args)
    if args.command == "completion":
        from . import completion

        return completion.run(args, build_parser())
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"google-token-operator: invalid setting: {error}", file=sys.stderr)
        return 2
    if args.command == "callback":
        from ..consent.callback import serve as callback_cli

        return callback_cli.run(args)
    if args.command == "authorize":
        from . import authorize

        return authorize.run(args)
    if args.command in ("refresh", "reauthorize"):
        from . import selection

        if problem := selection.check(args):
            parser.error(f"{args.command}: {problem}")
        if not args.name:
            return selection.run(args)
    if args.command in ("refresh", "reauthorize", "revoke"):
        from . import request_commands

        return request_commands.run(args)
    if args.command == "status":
        from . import status_command

        return status_command.run(args)
    if args.command == "migrate-storage":
        from . import migrate_storage

        return migrate_storage.run(args, sys.stdout)
    if args.command == "run":
        from .. import runner

        return runner.run(args, settings)
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
