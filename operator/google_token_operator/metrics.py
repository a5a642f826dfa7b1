"""Prometheus metrics, named in the style of cert-manager. Labels never carry secret values."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from .blockers import Blocker, Kind

PREFIX = "google_token_operator"


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._authorized_reasons: dict[tuple[str, str], str] = {}
        self._blocked_reasons: dict[tuple[str, str], str] = {}
        self.token_expiration = Gauge(
            f"{PREFIX}_token_expiration_timestamp_seconds",
            "When the access token in the GoogleClient's consumer Secret expires (Unix time).",
            ["namespace", "name"],
            registry=self.registry,
        )
        self.grant_expiration = Gauge(
            f"{PREFIX}_grant_expiration_timestamp_seconds",
            "When the GoogleClient's time-limited grant ends (Unix time; status.grantExpiresAt); "
            "no series when its grant does not end on its own.",
            ["namespace", "name"],
            registry=self.registry,
        )
        self.refresh_attempts = Counter(
            f"{PREFIX}_refresh_attempts_total",
            "Calls to Google's token endpoint to refresh an access token, by result.",
            ["namespace", "name", "result"],
            registry=self.registry,
        )
        self.refresh_duration = Histogram(
            f"{PREFIX}_refresh_duration_seconds",
            "How long Google's token endpoint took to answer a refresh.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.ready = Gauge(
            f"{PREFIX}_ready_status",
            "1 when the resource's Ready condition is True, else 0.",
            ["kind", "namespace", "name"],
            registry=self.registry,
        )
        self.authorized = Gauge(
            f"{PREFIX}_authorized_status",
            "1 when the GoogleClient's Authorized condition is True, else 0 (see reason).",
            ["namespace", "name", "reason"],
            registry=self.registry,
        )
        self.blocked = Gauge(
            f"{PREFIX}_blocked_status",
            "1 while something in the cluster must be fixed before the GoogleClient can work "
            "(see reason), else 0; the same answer as `status` and the commands give.",
            ["namespace", "name", "reason"],
            registry=self.registry,
        )
        self.leader = Gauge(
            f"{PREFIX}_leader",
            "1 while this replica holds the leader Lease and may act, else 0.",
            registry=self.registry,
        )
        self.client_passes = Counter(
            f"{PREFIX}_client_passes_total",
            "Passes run over GoogleClients (each reads, decides and writes one client).",
            registry=self.registry,
        )
        # No label: a client id or an e-mail as a label value would put an account in every
        # dashboard and a series per pair in Prometheus; the GrantLimitNear Events name the
        # GoogleClients. The leader sets it; a standby exports 0.
        self.grant_sharing_max = Gauge(
            f"{PREFIX}_grant_sharing_max",
            "The largest number of GoogleClients keeping a grant of one (OAuth client, Google "
            "account) pair; Google keeps at most 100 refresh tokens per pair.",
            registry=self.registry,
        )
        self.secret_writes = Counter(
            f"{PREFIX}_secret_writes_total",
            "Secrets the operator created or updated, by role (private, consumer, consent).",
            ["role"],
            registry=self.registry,
        )
        self.notifications = Counter(
            f"{PREFIX}_notifications_total",
            "Attempts to deliver a webhook notice, by result: delivered (a 2xx), failed (tried "
            "again later), abandoned (no 2xx within an hour), refused (the URL is not allowed).",
            ["result"],
            registry=self.registry,
        )

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """Drop the series of a deleted resource so dashboards do not show ghosts."""
        with contextlib.suppress(KeyError):
            self.ready.remove(kind, namespace, name)
        if kind == "GoogleClient":
            self.token_gone(namespace, name)
            self.set_grant_end(namespace, name, None)
            self.set_authorized(namespace, name, None)
            self.set_blocked(namespace, name, None)

    def token_gone(self, namespace: str, name: str) -> None:
        """The client holds no access token (revoked on request, or never had one)."""
        with contextlib.suppress(KeyError):
            self.token_expiration.remove(namespace, name)

    def set_grant_end(self, namespace: str, name: str, moment: dt.datetime | None) -> None:
        """The end of the client's time-limited grant; None: it has none (the series goes)."""
        if moment is None:
            with contextlib.suppress(KeyError):
                self.grant_expiration.remove(namespace, name)
        else:
            self.grant_expiration.labels(namespace, name).set(moment.timestamp())

    def set_authorized(
        self, namespace: str, name: str, condition: Mapping[str, Any] | None
    ) -> None:
        """One series per client, labelled with the current reason (the previous one goes)."""
        value = (
            None
            if condition is None
            else (
                str(condition.get("reason", "")),
                1 if condition.get("status") == "True" else 0,
            )
        )
        _one_series(self.authorized, self._authorized_reasons, namespace, name, value)

    def set_blocked(self, namespace: str, name: str, blocker: Blocker | None) -> None:
        value = None if blocker is None else (blocker.reason, int(blocker.kind is Kind.FIX))
        _one_series(self.blocked, self._blocked_reasons, namespace, name, value)

    def serve(self, port: int) -> None:
        if port:
            start_http_server(port, addr="0.0.0.0", registry=self.registry)  # noqa: S104


def _one_series(
    gauge: Gauge,
    reasons: dict[tuple[str, str], str],
    namespace: str,
    name: str,
    value: tuple[str, int] | None,
) -> None:
    """Keep one series per client of a gauge labelled with a reason: the previous reason's
    series goes; `value` (reason, value) None removes it."""
    previous = reasons.pop((namespace, name), None)
    if previous is not None:
        gauge.remove(namespace, name, previous)
    if value is not None:
        gauge.labels(namespace, name, value[0]).set(value[1])
        reasons[(namespace, name)] = value[0]
