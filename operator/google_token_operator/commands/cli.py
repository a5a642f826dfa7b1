"""The `google-token-operator` command (also `kubectl google-token`): run, callback,
authorize, refresh, reauthorize, revoke, status."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..consent_state.contract import CONSENT_PORT
from ..settings import Settings, SettingsError


def build_parser(prog: str = "google-token-operator") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Keeps Google OAuth access tokens fresh in Kubernetes Secrets.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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

    from ..day2 import Request
    from . import authorize, request_commands, status_command

    authorize.configure_parser(
        commands.add_parser(
            "authorize", help="print a GoogleClient's consent URL and wait until it is authorized"
        )
    )
    for kind in Request:
        request_commands.configure_parser(
            commands.add_parser(kind.value, help=request_commands.HELP[kind]), kind
        )
    status_command.configure_parser(
        commands.add_parser("status", help="show GoogleClients and Branches at a glance")
    )
    return parser


def program_name(argv0: str) -> str:
    """As a kubectl plugin (an executable named kubectl-google_token) the command is
    `kubectl google-token`."""
    if os.path.basename(argv0).startswith("kubectl-"):
        return "kubectl google-token"
    return "google-token-operator"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(program_name(sys.argv[0])).parse_args(argv)
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
    if args.command in ("refresh", "reauthorize", "revoke"):
        from . import request_commands

        return request_commands.run(args)
    if args.command == "status":
        from . import status_command

        return status_command.run(args)
    if args.command == "run":
        from .. import runner

        return runner.run(args, settings)
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
