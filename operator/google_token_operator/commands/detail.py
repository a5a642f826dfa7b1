"""`google-token-operator status NAME`: one GoogleClient in detail, like `cmctl status
certificate`: its conditions, token times, consent, the Secrets it reads and writes, its
Branches and its Events, in one place.

`describe` turns what was read into plain data (the json and yaml outputs); `render` turns
that into text. Of a Secret only its name, keys and ownership are shown, never a value. What
this user may not read (kubectl's `view` role reads no Secret) is shown as not readable.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

from ..kube import Kube, KubeError
from ..naming import is_managed, private_secret_name
from ..timeutil import format_rfc3339
from . import formats, waiting
from .authorize import read_status
from .status_command import branch_row, client_row, next_refresh_in, time_left

T = TypeVar("T")
EVENTS_SHOWN = 10
NOT_READABLE = "(not readable with this kubeconfig's rights)"
SECRET_STATES = {False: "missing", None: "not readable"}
Body = Mapping[str, Any]


def secret_names(body: Body) -> dict[str, str]:
    """The Secrets of a GoogleClient, by role."""
    name = str(body["metadata"]["name"])
    credentials = ((body.get("spec") or {}).get("credentialsSecretRef") or {}).get("name")
    return {
        "credentials": str(credentials or ""),
        "private": private_secret_name(name),
        "token": read_status(body).token_secret,
    }


def describe_secret(role: str, name: str, secrets: Mapping[str, Body | None]) -> dict[str, Any]:
    """`secrets`: those read, None for absent; a name not in it could not be read."""
    if name not in secrets:
        return {"role": role, "name": name, "exists": None}
    secret = secrets[name]
    if secret is None:
        return {"role": role, "name": name, "exists": False}
    meta = secret.get("metadata") or {}
    return {
        "role": role,
        "name": name,
        "exists": True,
        "keys": sorted(str(key) for key in (secret.get("data") or {})),
        "managed": is_managed(meta.get("labels") or {}),
    }


def describe_event(event: Body) -> dict[str, Any]:
    series = event.get("series") or {}
    return {
        "time": str(
            event.get("lastTimestamp")
            or series.get("lastObservedTime")
            or event.get("eventTime")
            or (event.get("metadata") or {}).get("creationTimestamp")
            or ""
        ),
        "type": str(event.get("type") or ""),
        "reason": str(event.get("reason") or ""),
        "count": int(event.get("count") or series.get("count") or 1),
        "message": str(event.get("message") or ""),
    }


def describe(
    body: Body,
    secrets: Mapping[str, Body | None],
    branches: Sequence[Body],
    events: Sequence[Body] | None,  # None: not readable
    now: dt.datetime,
) -> dict[str, Any]:
    row = client_row(body, now)
    status = body.get("status") or {}
    authorization = status.get("authorization") or {}
    shown_events = sorted(
        (describe_event(event) for event in events or ()), key=lambda e: e["time"]
    )
    return {
        "time": format_rfc3339(now),
        "namespace": row.namespace,
        "name": row.name,
        "account": row.account or None,
        "ready": row.ready,
        "reason": row.reason,
        "message": row.message,
        "conditions": [
            {
                key: str(condition.get(key) or "")
                for key in ("type", "status", "reason", "message", "lastTransitionTime")
            }
            for condition in status.get("conditions") or []
            if isinstance(condition, Mapping)
        ],
        "token": {
            "expiresAt": row.expires_at or None,
            "secondsLeft": row.seconds_left,
            "lastRefreshTime": str(status.get("lastRefreshTime") or "") or None,
            "nextRefreshTime": row.next_refresh or None,
            "failedRefreshAttempts": int(status.get("failedRefreshAttempts") or 0),
            "lastFailure": row.last_failure or None,
            # When the person's time-limited grant ends (none: it does not end on its own).
            "grantExpiresAt": str(status.get("grantExpiresAt") or "") or None,
        },
        "consent": {
            "url": row.consent_url or None,
            "expiresAt": str(authorization.get("expiresAt") or "") or None,
        },
        "openRequests": list(row.open_requests),
        "secrets": [
            describe_secret(role, name, secrets)
            for role, name in secret_names(body).items()
            if name
        ],
        "branches": [
            {
                "name": branch.name,
                "ready": branch.ready,
                "reason": branch.reason,
                "tokenSecretName": branch.token_secret or None,
            }
            for branch in sorted((branch_row(b) for b in branches), key=lambda b: b.name)
        ],
        "events": None if events is None else shown_events[-EVENTS_SHOWN:],
    }


def render(view: Mapping[str, Any], now: dt.datetime) -> list[str]:
    token = view["token"]
    consent = view["consent"]
    lines = [
        f"GoogleClient {view['namespace']}/{view['name']}",
        f"  account:        {view['account'] or '-'}",
        f"  ready:          {view['ready']} {view['reason'] or ''}".rstrip(),
    ]
    if view["message"]:
        lines.append(f"  message:        {view['message']}")
    lines += [
        "Conditions:",
        *_table(
            ("TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"),
            [
                [c["type"], c["status"], c["reason"], c["lastTransitionTime"], c["message"]]
                for c in view["conditions"]
            ],
            "(none reported yet)",
        ),
        "Token:",
        f"  expires at:     {token['expiresAt'] or '-'} ({time_left(token['secondsLeft'])} left)",
        f"  last refresh:   {token['lastRefreshTime'] or '-'}",
        f"  next refresh:   {token['nextRefreshTime'] or '-'} "
        f"({next_refresh_in(token['nextRefreshTime'] or '', now)})",
        f"  failed refreshes: {token['failedRefreshAttempts']}",
    ]
    if token["lastFailure"]:
        lines.append(f"  last failure:   {token['lastFailure']}")
    if token["grantExpiresAt"]:
        lines.append(f"  grant ends at:  {token['grantExpiresAt']} (time-limited access)")
    if consent["url"]:
        lines += [f"Consent URL (expires at {consent['expiresAt'] or '?'}):", f"  {consent['url']}"]
    if view["openRequests"]:
        lines.append(f"Open requests:    {', '.join(view['openRequests'])}")
    lines += [
        "Secrets:",
        *_table(
            ("ROLE", "NAME", "STATE", "KEYS"),
            [
                [
                    s["role"],
                    s["name"],
                    SECRET_STATES[s["exists"]] if not s["exists"] else _owner(s),
                    ", ".join(s.get("keys", [])) or "-",
                ]
                for s in view["secrets"]
            ],
            "(none)",
        ),
        "Branches:",
        *_table(
            ("NAME", "READY", "REASON", "SECRET"),
            [
                [b["name"], b["ready"], b["reason"] or "-", b["tokenSecretName"] or "-"]
                for b in view["branches"]
            ],
            "(none)",
        ),
        "Events:",
        *_table(
            ("LAST SEEN", "TYPE", "REASON", "COUNT", "MESSAGE"),
            [
                [e["time"], e["type"], e["reason"], str(e["count"]), e["message"]]
                for e in view["events"] or ()
            ],
            "(none)" if view["events"] is not None else NOT_READABLE,
        ),
    ]
    return lines


def _owner(secret: Mapping[str, Any]) -> str:
    return "managed" if secret["managed"] else "present"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], empty: str) -> list[str]:
    if not rows:
        return [f"  {empty}"]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [
        "  "
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


# -- I/O ------------------------------------------------------------------------------------


class Forbidden(Exception):
    pass


async def allowed(call: Awaitable[T]) -> T:
    """The answer, or Forbidden for a 403 (RBAC) rather than a failed command."""
    try:
        return await call
    except KubeError as error:
        if error.status == 403:
            raise Forbidden() from None
        raise


def run(args: argparse.Namespace) -> int:
    async def work(kube: Kube, namespace: str) -> int:
        async def read() -> formats.Frame:
            body = await kube.get_resource("googleclients", namespace, args.name)
            if body is None:
                missing = await formats.missing_namespace(kube, namespace)
                return missing or formats.Frame(
                    waiting.not_found(namespace, args.name), exit=waiting.FAILED
                )
            secrets = {}
            for name in filter(None, secret_names(body).values()):
                with contextlib.suppress(Forbidden):
                    secrets[name] = await allowed(kube.get_secret(namespace, name))
            branches = [
                branch
                for branch in await kube.list_resources("branches", namespace)
                if ((branch.get("spec") or {}).get("clientRef") or {}).get("name") == args.name
            ]
            events: list[dict[str, Any]] | None = None
            with contextlib.suppress(Forbidden):
                events = await allowed(kube.list_events(namespace, "GoogleClient", args.name))
            now = waiting.utc_now()
            view = describe(body, secrets, branches, events, now)
            if args.output in ("json", "yaml"):
                text = formats.dump(args.output, view)
            else:
                text = "\n".join(render(view, now))
            change = (
                body["metadata"].get("resourceVersion"),
                tuple(
                    str((s or {}).get("metadata", {}).get("resourceVersion"))
                    for s in secrets.values()
                ),
                tuple(b["metadata"].get("resourceVersion") for b in branches),
                tuple(e["metadata"].get("resourceVersion") for e in events or ()),
            )
            return formats.Frame(text, change)

        return await formats.show(read, args.output, args.watch, out=sys.stdout)

    return waiting.run_with_kube(
        "status",
        args.namespace,
        work,
        lambda namespace: f"cannot read GoogleClient {namespace}/{args.name}",
        **waiting.kube_flags(args),
    )
