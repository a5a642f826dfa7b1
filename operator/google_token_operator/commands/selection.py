"""`refresh|reauthorize --all` and `-l SELECTOR`: one request to several GoogleClients.

Every annotation is written first, so the operator works on them side by side (each client's
rate limit still applies); a client blocked by what a person must fix is named and not asked.
Then each answer is awaited in turn with request_commands' own `decide`, all within the one
--timeout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import sys

from ..day2 import Request
from ..kube import Kube
from . import waiting
from .request_commands import Asked, Exit, decide, first_ask, refusal, request_value


def check(args: argparse.Namespace) -> str:
    """What is wrong with how the clients are named ("" when nothing)."""
    chosen = [bool(args.name), args.all, bool(args.selector)]
    if sum(chosen) == 1:
        return ""
    return "name one GoogleClient, or --all, or -l SELECTOR (only one of them)"


async def ask_all(kube: Kube, namespace: str, args: argparse.Namespace) -> int:
    kind = Request(args.command)
    bodies = await kube.list_resources("googleclients", namespace, args.selector)
    if not bodies:
        which = f" matching {args.selector!r}" if args.selector else ""
        print(f"No GoogleClients{which} in namespace {namespace}.")
        return Exit.FAILED
    now = waiting.utc_now()
    value = request_value(now)
    asked: list[Asked] = []
    worst = Exit.DONE
    for body in sorted(bodies, key=lambda body: str(body["metadata"]["name"])):
        one = first_ask(kind, body, value, now, dt.timedelta(seconds=args.timeout))
        refused = refusal(kind, str(one), body.get("status"))
        if refused:
            print(refused)  # asking could not help: no request is left behind
            worst = Exit.BLOCKED
        elif await kube.annotate("googleclients", namespace, one.name, {kind.annotation: value}):
            asked.append(one)
    if asked:
        names = ", ".join(one.name for one in asked)
        print(
            f"Asked for {kind} of {len(asked)} GoogleClient(s) in namespace {namespace} "
            f"({kind.annotation}={value}): {names}."
        )
    for one in asked:
        fetch = functools.partial(kube.get_resource, "googleclients", namespace, one.name)
        answer = await waiting.follow(fetch, decide, one, out=sys.stdout, clock=waiting.utc_now)
        worst = max(worst, Exit(answer))
    return worst


def run(args: argparse.Namespace) -> int:
    """The exit status is the worst of the clients' (0 all done, 3 one not done, 4 timed out,
    5 one blocked: it was not asked)."""
    return waiting.run_with_kube(
        args.command,
        args.namespace,
        lambda kube, namespace: ask_all(kube, namespace, args),
        lambda namespace: f"cannot ask the GoogleClients in namespace {namespace}",
        **waiting.kube_flags(args),
    )
