"""`google-token-operator callback`: serve the consent callback until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from urllib.parse import urlsplit

from ... import serving
from ...consent_state.contract import (
    CALLBACK_PATH,
    CALLBACK_PORT,
    DEFAULT_OPERATOR_URL,
    HEALTHZ_PATH,
    KEY_FILE,
    KEY_FILE_VARIABLE,
    KEY_SECRET,
    OPERATOR_URL_VARIABLE,
)
from .app import create_app


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        f"Serve the OAuth consent callback (GET {CALLBACK_PATH}, GET {HEALTHZ_PATH}): hand what "
        "Google sends to the operator's consent API and show the person the outcome. It "
        "needs no Kubernetes permissions and no secrets."
    )
    parser.add_argument(
        "--host",
        default="0.0.0.0",  # noqa: S104 - in its pod it serves the Service
        help="address to bind (default: %(default)s)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=CALLBACK_PORT,
        help="port to bind; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--operator-url",
        type=_http_url,
        # argparse runs a string default through `type` too, so a bad variable is reported.
        default=os.environ.get(OPERATOR_URL_VARIABLE) or DEFAULT_OPERATOR_URL,
        metavar="URL",
        help=f"base URL of the operator's consent API (default: ${OPERATOR_URL_VARIABLE}, "
        f"else {DEFAULT_OPERATOR_URL})",
    )
    parser.add_argument(
        "--trust-proxy",
        action="store_true",
        help="take the client's address for the per-address limit from the last "
        "X-Forwarded-For entry: only behind an Ingress or load balancer that sets it "
        "(default: the peer's address)",
    )
    parser.add_argument(
        "--api-key-file",
        type=Path,
        default=Path(os.environ.get(KEY_FILE_VARIABLE) or KEY_FILE),
        metavar="PATH",
        help="the key the consent API expects, as the operator wrote it into Secret "
        f"{KEY_SECRET} (default: ${KEY_FILE_VARIABLE}, else {KEY_FILE})",
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(_serve_until_signalled(args))
    except OSError as error:
        print(f"google-token-operator callback: cannot serve: {error}", file=sys.stderr)
        return 1
    return 0


async def _serve_until_signalled(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    def announce(url: str) -> None:
        print(
            f"serving the consent callback on {url}{CALLBACK_PATH}; "
            f"consent API: {args.operator_url}",
            flush=True,
        )

    await serving.serve(
        create_app(args.operator_url, args.api_key_file, trust_proxy=args.trust_proxy),
        args.host,
        args.port,
        stop=stop,
        on_ready=announce,
    )


def _http_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an http(s) URL such as {DEFAULT_OPERATOR_URL}"
        )
    return text
