"""What the commands that wait on the operator share (`authorize`, `refresh`, `reauthorize`,
`revoke`): a loop that reads the GoogleClient, asks a pure `decide` what to print and whether
to stop, and sleeps; a console for full lines plus one progress line; and the plumbing from
the kubeconfig to an exit status."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TextIO, TypeVar

from ..blockers import Blocker, ConsentFailure, consent_failure_advice, consent_failure_of
from ..kube import ConfigError, Kube, KubeConfig, KubeError, load_config
from ..timeutil import format_rfc3339, is_ascii_number
from .terminal import visible

POLL_INTERVAL = 1.0
# Without a terminal the progress line is printed as a plain line this often (seconds).
PLAIN_PROGRESS_EVERY = 10.0
# The exit statuses every waiting command shares (each may add its own).
FAILED = 1  # no such GoogleClient, or the Kubernetes API cannot be read
TIMED_OUT = 4
BLOCKED = 5  # something in the cluster must be fixed first; waiting cannot help
INTERRUPTED = 130  # the shell's code for Ctrl-C

W = TypeVar("W")
Body = Mapping[str, Any] | None


@dataclasses.dataclass(frozen=True)
class Step(Generic[W]):
    """What one reading of the GoogleClient means to a command."""

    watch: W  # what the command knows for the next reading
    lines: tuple[str, ...] = ()  # to print, in order
    status_line: str = ""  # the one progress line, rewritten in place
    exit: int | None = None


class Console:
    """Full lines, plus one progress line: rewritten in place on a terminal, else printed as
    a plain line every PLAIN_PROGRESS_EVERY seconds (a log shows what is awaited)."""

    def __init__(self, stream: TextIO, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self._status_width = 0
        self._monotonic = monotonic
        self._plain_at = monotonic() + PLAIN_PROGRESS_EVERY

    def show(self, step: Step[Any]) -> None:
        if step.lines:
            self._clear_status()
            for line in step.lines:
                print(visible(line), file=self.stream)
        status_line = visible(step.status_line)
        if status_line and self.live:
            padding = " " * max(0, self._status_width - len(status_line))
            self.stream.write(f"\r{status_line}{padding}")
            self._status_width = len(status_line)
        elif status_line and self._monotonic() >= self._plain_at:
            print(status_line, file=self.stream)
            self._plain_at = self._monotonic() + PLAIN_PROGRESS_EVERY
        self.stream.flush()

    def close(self) -> None:
        self._clear_status()
        self.stream.flush()

    def _clear_status(self) -> None:
        if self._status_width:
            self.stream.write("\r" + " " * self._status_width + "\r")
            self._status_width = 0


async def follow(
    fetch: Callable[[], Awaitable[Body]],
    decide: Callable[[W, Body, dt.datetime], Step[W]],
    watch: W,
    *,
    out: TextIO,
    clock: Callable[[], dt.datetime],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> int:
    """Read, decide, print, sleep, until `decide` says stop; its exit status."""
    console = Console(out)
    try:
        while True:
            step = decide(watch, await fetch(), clock())
            console.show(step)
            if step.exit is not None:
                return step.exit
            watch = step.watch
            await sleep(POLL_INTERVAL)
    finally:
        console.close()


def format_elapsed(duration: dt.timedelta) -> str:
    minutes, seconds = divmod(int(duration.total_seconds()), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def add_target_arguments(
    parser: argparse.ArgumentParser, default_timeout: int, *, several: bool = False
) -> None:
    """`several`: NAME may be left out for --all or -l SELECTOR (see selection.py)."""
    if several:
        parser.add_argument(
            "name", metavar="NAME", nargs="?", help="the GoogleClient (or --all, or -l)"
        )
        parser.add_argument(
            "--all", action="store_true", help="every GoogleClient in the namespace"
        )
        parser.add_argument(
            "-l", "--selector", default="", help="the GoogleClients this label selector matches"
        )
    else:
        parser.add_argument("name", metavar="NAME", help="the GoogleClient")
    add_namespace_argument(parser)
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=default_timeout,
        metavar="SECONDS",
        help="give up waiting after this long (default: %(default)s)",
    )


def add_namespace_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-n",
        "--namespace",
        # A -n before the command (kubectl's place) stays unless one follows it.
        default=argparse.SUPPRESS,
        help="its namespace (default: the kubeconfig context's namespace, else default)",
    )


def positive_seconds(text: str) -> int:
    if not is_ascii_number(text) or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number of seconds")
    return int(text)


def run_with_kube(
    command: str,
    namespace: str | None,
    work: Callable[[Kube, str], Awaitable[int]],
    failure: Callable[[str], str],
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
) -> int:
    """Load the kubeconfig (`kubeconfig`, `context`: as kubectl's flags), run
    `work(kube, namespace)`; a Kubernetes error becomes exit 1 with `failure(namespace)`
    saying what could not be done."""
    try:
        config = load_config(kubeconfig=kubeconfig, context=context)
    except ConfigError as error:
        complain(command, f"{error}; set KUBECONFIG or run in a pod")
        return FAILED
    target = namespace or config.default_namespace
    try:
        return asyncio.run(_with_kube(config, target, work))
    except KubeError as error:
        complain(command, f"{failure(target)}: {error}")
    except KeyboardInterrupt:
        return INTERRUPTED
    return FAILED


async def _with_kube(
    config: KubeConfig, namespace: str, work: Callable[[Kube, str], Awaitable[int]]
) -> int:
    kube = Kube(config)
    try:
        return await work(kube, namespace)
    finally:
        await kube.close()


def kube_flags(args: argparse.Namespace) -> dict[str, str | None]:
    """--kubeconfig and --context, for run_with_kube."""
    return {"kubeconfig": args.kubeconfig, "context": args.context}


def complain(command: str, message: str) -> None:
    print(f"google-token-operator {command}: {message}", file=sys.stderr)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def blocked_line(target: str, blocker: Blocker) -> str:
    """Why waiting on a blocked GoogleClient cannot help, and what to fix."""
    return (
        f"GoogleClient {target} is blocked ({blocker.reason}): {blocker.message.rstrip('.')}. "
        "Waiting "
        "cannot help; the operator goes on by itself once this is fixed."
    )


def new_consent_failure(known: ConsentFailure | None, body: Body) -> ConsentFailure | None:
    """A consent failure recorded since `known` (the one seen at the first reading)."""
    failure = consent_failure_of((body or {}).get("status"))
    return failure if failure is not None and failure != known else None


def consent_failure_line(target: str, failure: ConsentFailure) -> str:
    missing = (
        f" (not granted: {', '.join(failure.missing_scopes)})" if failure.missing_scopes else ""
    )
    return (
        f"The consent for GoogleClient {target} failed at {format_rfc3339(failure.time)} "
        f"({failure.reason}): {consent_failure_advice(failure.reason)}{missing}."
    )


def unacknowledged(target: str, namespace: str, what: str) -> str:
    """The timeout that blames nobody else: the operator has not answered."""
    return (
        f"The operator has not acknowledged {what} for GoogleClient {target}: is it running and "
        f"watching namespace {namespace}? (`google-token-operator status -n {namespace}` shows "
        "what it last reported; its log says why it waits)"
    )


def not_found(namespace: str, name: str) -> str:
    return (
        f"GoogleClient {name} not found in namespace {namespace}; "
        f"`kubectl get googleclients -n {namespace}` lists the ones there."
    )
