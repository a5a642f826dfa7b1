"""`google-token-operator status [NAME] [-n NS | -A] [-o table|wide|json|yaml] [-w]`:
GoogleClients and Branches at a glance: account, time left, next refresh, last failure, open
requests.

`client_row` and `branch_row` read one object each (pure, the clock passed in); the renderers
turn rows into a table or JSON (formats.py adds wide and yaml; detail.py the view of one
GoogleClient); only `run` talks to the API server.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from ..blockers import blocker_of, consent_failure_of
from ..conditions import AUTHORIZED, READY, find_condition
from ..day2 import open_requests
from ..kube import Kube
from ..timeutil import format_rfc3339, parse_rfc3339
from . import waiting
from .authorize import read_status


@dataclasses.dataclass(frozen=True)
class ClientRow:
    namespace: str
    name: str
    account: str
    authorized: str  # the condition's status: True, False, or Unknown before the first pass
    ready: str
    reason: str  # what blocks it (blockers.blocker_of), or Ready's reason when nothing does
    message: str
    expires_at: str
    seconds_left: int | None  # None: no token
    next_refresh: str
    last_failure: str
    token_secret: str
    consent_url: str
    open_requests: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class BranchRow:
    namespace: str
    name: str
    client: str
    location: str
    title: str
    ready: str
    reason: str
    message: str
    token_secret: str


def client_row(body: Mapping[str, Any], now: dt.datetime) -> ClientRow:
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    read = read_status(body)
    conditions = status.get("conditions")
    authorized = find_condition(conditions, AUTHORIZED)
    ready = find_condition(conditions, READY)
    blocker = blocker_of(status)
    consent_failure = consent_failure_of(status)
    expires_at = str(status.get("expiresAt") or "")
    seconds_left = None
    if expires_at:
        try:
            seconds_left = int((parse_rfc3339(expires_at) - now).total_seconds())
        except ValueError:
            seconds_left = None
    return ClientRow(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        account=read.account,
        authorized=str(authorized.get("status", "Unknown")),
        ready=str(ready.get("status", "Unknown")),
        reason=blocker.reason,
        message=blocker.message,
        expires_at=expires_at,
        seconds_left=seconds_left,
        next_refresh=str(status.get("nextRefreshTime") or ""),
        last_failure=str(status.get("lastFailure") or "")
        or (
            f"consent {consent_failure.reason} at {format_rfc3339(consent_failure.time)}"
            if consent_failure
            else ""
        ),
        token_secret=read.token_secret,
        consent_url=read.url,
        open_requests=tuple(
            sorted(open_requests(meta.get("annotations") or {}, status.get("handledRequests")))
        ),
    )


def branch_row(body: Mapping[str, Any]) -> BranchRow:
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    ready = find_condition(status.get("conditions"), READY)
    location = status.get("location") or {}
    return BranchRow(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        client=str((spec.get("clientRef") or {}).get("name", "")),
        location=f"accounts/{spec.get('accountId', '?')}/locations/{spec.get('locationId', '?')}",
        title=str(location.get("title") or ""),
        ready=str(ready.get("status", "Unknown")),
        reason=str(ready.get("reason", "")),
        message=str(ready.get("message", "")),
        token_secret=str(status.get("tokenSecretName") or ""),
    )


def time_left(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    if seconds <= 0:
        return "expired"
    minutes, _ = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m" if minutes else f"{seconds}s"


def next_refresh_in(next_refresh: str, now: dt.datetime) -> str:
    if not next_refresh:
        return "-"
    try:
        seconds = int((parse_rfc3339(next_refresh) - now).total_seconds())
    except ValueError:
        return "-"
    return "due" if seconds <= 0 else f"in {time_left(seconds)}"


CLIENT_COLUMNS = ("NAME", "ACCOUNT", "READY", "REASON", "TIME LEFT", "NEXT REFRESH", "LAST FAILURE")
BRANCH_COLUMNS = ("NAME", "CLIENT", "LOCATION", "READY", "REASON", "SECRET")


def render_table(
    client_rows: Sequence[ClientRow],
    branch_rows: Sequence[BranchRow],
    now: dt.datetime,
    all_namespaces: bool,
) -> list[str]:
    if not client_rows and not branch_rows:
        return ["No GoogleClients or Branches found."]
    lines: list[str] = []
    if client_rows:
        cells = [
            (
                row.namespace,
                [
                    row.name,
                    row.account or "-",
                    row.ready,
                    row.reason or "-",
                    time_left(row.seconds_left),
                    next_refresh_in(row.next_refresh, now),
                    _short(row.last_failure) or "-",
                ],
            )
            for row in client_rows
        ]
        lines += _section("GoogleClients:", CLIENT_COLUMNS, cells, all_namespaces)
        for row in client_rows:
            if row.open_requests:
                lines.append(f"  {row.name}: waiting for {', '.join(row.open_requests)}")
            if row.consent_url:
                lines.append(f"  {row.name}: consent URL: {row.consent_url}")
    if branch_rows:
        cells = [
            (
                row.namespace,
                [
                    row.name,
                    row.client,
                    row.title or row.location,
                    row.ready,
                    row.reason or "-",
                    row.token_secret or "-",
                ],
            )
            for row in branch_rows
        ]
        lines += ([""] if lines else []) + _section(
            "Branches:", BRANCH_COLUMNS, cells, all_namespaces
        )
    return lines


def _section(
    title: str,
    columns: Sequence[str],
    cells: Sequence[tuple[str, list[str]]],
    all_namespaces: bool,
) -> list[str]:
    """A titled table; with -A, a NAMESPACE column first."""
    header = ["NAMESPACE", *columns] if all_namespaces else list(columns)
    rows = [[namespace, *row] if all_namespaces else row for namespace, row in cells]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [title] + [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def to_json(
    client_rows: Sequence[ClientRow], branch_rows: Sequence[BranchRow], now: dt.datetime
) -> dict[str, Any]:
    return {
        "time": format_rfc3339(now),
        "clients": [
            {
                "namespace": row.namespace,
                "name": row.name,
                "account": row.account or None,
                "authorized": row.authorized,
                "ready": row.ready,
                "reason": row.reason,
                "message": row.message,
                "expiresAt": row.expires_at or None,
                "secondsLeft": row.seconds_left,
                "nextRefreshTime": row.next_refresh or None,
                "lastFailure": row.last_failure or None,
                "tokenSecretName": row.token_secret,
                "consentURL": row.consent_url or None,
                "openRequests": list(row.open_requests),
            }
            for row in client_rows
        ],
        "branches": [
            {
                "namespace": row.namespace,
                "name": row.name,
                "client": row.client,
                "location": row.location,
                "title": row.title or None,
                "ready": row.ready,
                "reason": row.reason,
                "message": row.message,
                "tokenSecretName": row.token_secret or None,
            }
            for row in branch_rows
        ],
    }


# -- I/O ------------------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Show GoogleClients (account, Ready, time left on the token, next refresh, last "
        "failure, open requests, consent URL) and Branches (client, location, Ready, Secret); "
        "with NAME, one GoogleClient in detail: conditions, token times, Secrets, Branches "
        "and Events."
    )
    parser.add_argument("name", metavar="NAME", nargs="?", help="one GoogleClient in detail")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        default=argparse.SUPPRESS,  # a -n before `status` stays
        help="this namespace (default: the kubeconfig context's namespace, else default)",
    )
    scope.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        default=argparse.SUPPRESS,
        help="every namespace",
    )
    from . import formats  # it renders these rows: imported once this module is

    formats.add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from . import detail, formats

    if args.name:
        if args.all_namespaces:
            waiting.complain("status", f"{args.name} is looked up in one namespace: -n, not -A")
            return 2
        return detail.run(args)

    async def work(kube: Kube, namespace: str) -> int:
        where = None if args.all_namespaces else namespace

        async def read() -> formats.Frame:
            client_bodies = await kube.list_resources("googleclients", where)
            branch_bodies = await kube.list_resources("branches", where)
            if where and not client_bodies and not branch_bodies:
                missing = await formats.missing_namespace(kube, where)
                if missing:
                    return missing
            now = waiting.utc_now()
            client_rows = sorted(
                (client_row(body, now) for body in client_bodies),
                key=lambda row: (row.namespace, row.name),
            )
            branch_rows = sorted(
                (branch_row(body) for body in branch_bodies),
                key=lambda row: (row.namespace, row.name),
            )
            text = formats.render_list(
                args.output, client_rows, branch_rows, now, args.all_namespaces
            )
            versions = [
                (body["metadata"].get("uid"), body["metadata"].get("resourceVersion"))
                for body in (*client_bodies, *branch_bodies)
            ]
            return formats.Frame(text, tuple(sorted(map(str, versions))))

        return await formats.show(read, args.output, args.watch, out=sys.stdout)

    return waiting.run_with_kube(
        "status",
        args.namespace,
        work,
        lambda namespace: (
            "cannot list GoogleClients and Branches"
            + ("" if args.all_namespaces else f" in namespace {namespace}")
        ),
        **waiting.kube_flags(args),
    )
