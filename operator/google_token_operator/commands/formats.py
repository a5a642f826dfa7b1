"""Output formats shared by `status` and `status NAME`: table (the default), wide (more
columns), json and yaml; and the frames of `--watch`.

Pure: plain data in, text out. `show` is the one loop that reads, prints and, with --watch,
reads again until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, TextIO

import yaml

from ..kube import Kube
from . import waiting
from .status_command import (
    BranchRow,
    ClientRow,
    _section,
    _short,
    next_refresh_in,
    render_table,
    time_left,
    to_json,
)
from .terminal import visible

FORMATS = ("table", "wide", "json", "yaml")
WATCH_INTERVAL = 2.0
# Clears a terminal and puts the cursor home: a watched table is redrawn in place.
CLEAR = "\x1b[H\x1b[2J"

Cell = Callable[[Any, dt.datetime], str]
# -o wide: every column, each read from a row (ClientRow, BranchRow), the messages whole.
WIDE_CLIENT_COLUMNS: tuple[tuple[str, Cell], ...] = (
    ("NAME", lambda row, now: row.name),
    ("ACCOUNT", lambda row, now: row.account),
    ("AUTHORIZED", lambda row, now: row.authorized),
    ("READY", lambda row, now: row.ready),
    ("REASON", lambda row, now: row.reason),
    ("TIME LEFT", lambda row, now: time_left(row.seconds_left)),
    ("EXPIRES AT", lambda row, now: row.expires_at),
    ("NEXT REFRESH", lambda row, now: next_refresh_in(row.next_refresh, now)),
    ("SECRET", lambda row, now: row.token_secret),
    ("MESSAGE", lambda row, now: row.message),
)
WIDE_BRANCH_COLUMNS: tuple[tuple[str, Cell], ...] = (
    ("NAME", lambda row, now: row.name),
    ("CLIENT", lambda row, now: row.client),
    ("LOCATION", lambda row, now: row.location),
    ("TITLE", lambda row, now: row.title),
    ("READY", lambda row, now: row.ready),
    ("REASON", lambda row, now: row.reason),
    ("SECRET", lambda row, now: row.token_secret),
    ("MESSAGE", lambda row, now: row.message),
)


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o", "--output", choices=FORMATS, default="table", help="table, wide, json or yaml"
    )
    parser.add_argument(
        "-w",
        "--watch",
        action="store_true",
        help="keep showing it: redrawn on a terminal, else printed again on each change",
    )


def render_list(
    output: str,
    client_rows: Sequence[ClientRow],
    branch_rows: Sequence[BranchRow],
    now: dt.datetime,
    all_namespaces: bool,
) -> str:
    if output == "wide":
        return "\n".join(render_wide(client_rows, branch_rows, now, all_namespaces))
    if output in ("json", "yaml"):
        return dump(output, to_json(client_rows, branch_rows, now))
    return "\n".join(render_table(client_rows, branch_rows, now, all_namespaces))


def render_wide(
    client_rows: Sequence[ClientRow],
    branch_rows: Sequence[BranchRow],
    now: dt.datetime,
    all_namespaces: bool,
) -> list[str]:
    if not client_rows and not branch_rows:
        return render_table(client_rows, branch_rows, now, all_namespaces)
    parts: list[list[str]] = []
    if client_rows:
        notes = [
            f"  {row.name}: {label}: {text}"
            for row in client_rows
            for label, text in (
                ("last failure", _short(row.last_failure, 200)),
                ("waiting for", ", ".join(row.open_requests)),
                ("consent URL", row.consent_url),
            )
            if text
        ]
        table = _wide("GoogleClients:", WIDE_CLIENT_COLUMNS, client_rows, now, all_namespaces)
        parts.append(table + notes)
    if branch_rows:
        parts.append(_wide("Branches:", WIDE_BRANCH_COLUMNS, branch_rows, now, all_namespaces))
    return [line for index, part in enumerate(parts) for line in ([""] * bool(index) + part)]


def _wide(
    title: str,
    columns: Sequence[tuple[str, Cell]],
    rows: Sequence[ClientRow] | Sequence[BranchRow],
    now: dt.datetime,
    all_namespaces: bool,
) -> list[str]:
    cells = [(row.namespace, [cell(row, now) or "-" for _, cell in columns]) for row in rows]
    return _section(title, [header for header, _ in columns], cells, all_namespaces)


def dump(output: str, document: Any) -> str:
    if output == "yaml":
        return yaml.safe_dump(document, sort_keys=False, allow_unicode=True).rstrip("\n")
    return json.dumps(document, indent=2)


@dataclasses.dataclass(frozen=True)
class Frame:
    """One showing: the text, what tells a change apart (resource versions, not the clock),
    and the exit status when it is the last (a missing namespace or object)."""

    text: str
    change: Hashable = None
    exit: int | None = None


def frame_text(frame: Frame, output: str, watch: bool, live: bool) -> str:
    """How a frame is printed: a watched terminal is redrawn; a watched pipe gets each
    change after the last (a YAML stream of documents, tables apart by a blank line)."""
    text = frame.text if output in ("json", "yaml") else visible(frame.text)
    if not watch:
        return text
    if live:
        return CLEAR + text
    if output == "yaml":
        return "---\n" + text
    return text + ("\n" if output in ("table", "wide") else "")


async def show(
    read: Callable[[], Awaitable[Frame]],
    output: str,
    watch: bool,
    *,
    out: TextIO,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> int:
    live = out.isatty()
    shown: Hashable = None
    first = True
    while True:
        frame = await read()
        if first or frame.exit is not None or live or frame.change != shown:
            print(frame_text(frame, output, watch, live), file=out, flush=True)
            shown, first = frame.change, False
        if frame.exit is not None:
            return frame.exit
        if not watch:
            return 0
        await sleep(WATCH_INTERVAL)


async def missing_namespace(kube: Kube, namespace: str) -> Frame | None:
    """When nothing was found: say so if it is the namespace that does not exist."""
    if await kube.namespace_exists(namespace) is False:
        return Frame(
            f"Namespace {namespace} does not exist (`kubectl get namespaces` lists them).",
            exit=waiting.FAILED,
        )
    return None
