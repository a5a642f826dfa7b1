"""The operator's own output: line format, the start-up banner, kopf's routine lines kept
down, lines about one object tagged with that object."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import Any

import kopf

from .settings import GoogleEndpoints

# UTC, to the second, the same in every text format: a line reads the same on any machine.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
TEXT_FORMATS = {
    "plain": "%(asctime)s %(levelname)-7s %(message)s",
    "full": "%(asctime)s %(name)-20.20s %(levelname)-7s %(message)s",
}
# kopf says these on every event handled; they only matter when debugging.
_ROUTINE = re.compile(
    r"^(Handler|Activity|Daemon|Timer) '.*' succeeded\.$"
    r"|^[\w ]+ is processed: \d+ succeeded; 0 failed\.$"
)


class TextFormatter(logging.Formatter):
    """`<time> <level> [namespace/name] message`: kopf's object prefix, our timestamps."""

    converter = staticmethod(time.gmtime)

    def __init__(self, fmt: str) -> None:
        super().__init__(fmt, TIME_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, Mapping) and ref.get("name"):
            namespace, name = ref.get("namespace"), ref.get("name")
            prefix = f"[{namespace}/{name}]" if namespace else f"[{name}]"
            record = logging.makeLogRecord({**record.__dict__, "msg": f"{prefix} {record.msg}"})
        return super().format(record)


def demote_routine(record: logging.LogRecord) -> bool:
    """kopf's success lines (per event; its start-up activities') at DEBUG: shown with
    --verbose only."""
    if (
        record.levelno != logging.INFO
        or not record.name.startswith("kopf.")
        or not _ROUTINE.match(str(record.msg))
    ):
        return True
    record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
    return logging.getLogger().isEnabledFor(logging.DEBUG)


def configure(verbose: bool, log_format: str) -> None:
    """kopf's handler on stderr; its JSON format as it is, the text formats with timestamps.

    Each object's lines name it: `[namespace/name] ...` in the text formats, an `object` field
    in JSON (kopf's own default; its `configure` omits the prefix unless asked)."""
    if log_format == "json":
        kopf.configure(verbose=verbose, log_format=kopf.LogFormat.JSON, log_prefix=None)
    else:
        kopf.configure(verbose=verbose, log_format=kopf.LogFormat.PLAIN)
    handler = logging.getLogger().handlers[-1]  # the one kopf.configure put in place
    if log_format != "json":
        handler.setFormatter(TextFormatter(TEXT_FORMATS[log_format]))
    handler.addFilter(demote_routine)


class Tagged(logging.LoggerAdapter[Any]):
    """Lines about another object than the logger's own (a Branch, logged from its client's
    pass) tagged with that object: its prefix, its JSON `object` field."""

    def __init__(self, logger: kopf.Logger, kind: str, namespace: str, name: str) -> None:
        ref = {"kind": kind, "namespace": namespace, "name": name}
        super().__init__(logger, {"k8s_ref": ref})

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        # As kopf's own adapter merges: a tag given by the call (an inner Tagged) wins.
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


def tagged(logger: kopf.Logger, body: Mapping[str, Any], kind: str = "Branch") -> Tagged:
    meta = body.get("metadata") or {}
    return Tagged(logger, kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def banner(
    version: str,
    namespaces: list[str],
    operator_namespace: str,
    ports: Mapping[str, int],
    google: GoogleEndpoints,
    leader_election: bool,
) -> list[str]:
    """What this operator is and where it listens and calls, once at start-up (no secret:
    only endpoints, names and numbers)."""
    watched = ", ".join(namespaces) if namespaces else "all namespaces"
    listening = ", ".join(
        f"{name} {port}" if port else f"{name} off" for name, port in ports.items()
    )
    return [
        f"google-token-operator {version} starting",
        f"Watching: {watched}; operator namespace: {operator_namespace}",
        f"Ports: {listening}",
        f"Google: auth {google.auth_uri}, token {google.token_uri}, revoke {google.revoke_uri}, "
        f"userinfo {google.userinfo_uri}",
        f"Google Business Profile: {google.business_account_api}, {google.business_info_api}, "
        f"{google.business_reviews_api}",
        f"Leader election: {'on' if leader_election else 'off'}",
    ]
