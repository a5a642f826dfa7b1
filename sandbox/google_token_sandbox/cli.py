"""`google-token-sandbox`: serve the sandbox Google and print how to point at it."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import signal
import sys
from collections.abc import Sequence

from google_token_operator import serving

from . import CONTROL_PREFIX, sandbox_environment
from .app import create_app
from .demo_data import DEMO_CLIENT_NAME
from .state import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URIS, SandboxState


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Serve a sandbox Google (OAuth consent, token, revoke, userinfo, Business Profile "
        "APIs) and print the GOOGLE_* environment that points the operator at it."
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8099,
        help="port to bind; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--token-lifetime",
        type=int,
        default=3599,
        metavar="SECONDS",
        help="access token lifetime, Google's is %(default)s",
    )
    parser.add_argument(
        "--auto-approve",
        action="store_true",
        help="approve every consent at once, as the login_hint user or the first user",
    )
    parser.add_argument(
        "--client-id",
        default=DEMO_CLIENT_ID,
        help="OAuth client to register (default: the demo client, %(default)s)",
    )
    parser.add_argument(
        "--client-secret", default=None, help="its secret (default: the demo client's secret)"
    )
    parser.add_argument(
        "--redirect-uri",
        action="append",
        default=None,
        metavar="URI",
        help="a redirect URI registered for the client (repeatable; default: "
        + ", ".join(DEMO_REDIRECT_URIS)
        + ")",
    )


def run(args: argparse.Namespace) -> int:
    state = SandboxState()
    try:
        state.apply_settings(
            {"token_lifetime": args.token_lifetime, "auto_approve": args.auto_approve}
        )
    except ValueError as error:
        print(f"google-token-sandbox: {error}", file=sys.stderr)
        return 2
    if args.client_id != DEMO_CLIENT_ID or args.client_secret or args.redirect_uri:
        state.register_client(
            args.client_id,
            args.client_secret or DEMO_CLIENT_SECRET,
            args.redirect_uri or DEMO_REDIRECT_URIS,
            name=DEMO_CLIENT_NAME if args.client_id == DEMO_CLIENT_ID else args.client_id,
        )
    try:
        asyncio.run(_serve_until_signalled(state, args))
    except OSError as error:
        print(f"google-token-sandbox: cannot serve: {error}", file=sys.stderr)
        return 1
    return 0


async def _serve_until_signalled(state: SandboxState, args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    def announce(url: str) -> None:
        _print_environment(url, args.client_id, secret_given=bool(args.client_secret))

    await serving.serve(create_app(state), args.host, args.port, stop=stop, on_ready=announce)


def _print_environment(url: str, client_id: str, *, secret_given: bool) -> None:
    lines = [
        f"export {name}={shlex.quote(value)}" for name, value in sandbox_environment(url).items()
    ]
    secret_hint = (
        "the --client-secret you passed"
        if secret_given
        else "DEMO_CLIENT_SECRET in google_token_sandbox.demo_data"
    )
    lines += [
        f"# OAuth client id: {client_id} (secret: {secret_hint})",
        f"# Sandbox control API: {url}{CONTROL_PREFIX}/counts; stop with Ctrl-C",
    ]
    print("\n".join(lines), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="google-token-sandbox")
    configure_parser(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
