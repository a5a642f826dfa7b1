"""Prometheus metrics, named in the style of cert-manager. Labels never carry secret values."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

PREFIX = "google_token_operator"


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._authorized_reasons: dict[tuple[str, str], str] = {}
        self.token_expiration = Gauge(
            f"{PREFIX}_token_expiration_timestamp_seconds",
            "When the access token in the GoogleClient's consumer Secret expires (Unix time).",
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
        self.secret_writes = Counter(
            f"{PREFIX}_secret_writes_total",
            "Secrets the operator created or updated, by role (private, consumer, consent).",
            ["role"],
            registry=self.registry,
        )

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """Drop the series of a deleted resource so dashboards do not show ghosts."""
        with contextlib.suppress(KeyError):
            self.ready.remove(kind, namespace, name)
        if kind == "GoogleClient":
            self.token_gone(namespace, name)
            self.set_authorized(namespace, name, None)

    def token_gone(self, namespace: str, name: str) -> None:
        """The client holds no access token (revoked on request, or never had one)."""
        with contextlib.suppress(KeyError):
            self.token_expiration.remove(namespace, name)

    def set_authorized(
        self, namespace: str, name: str, condition: Mapping[str, Any] | None
    ) -> None:
        """One series per client, labelled with the current reason (the previous one goes)."""
        previous = self._authorized_reasons.pop((namespace, name), None)
        if previous is not None:
            self.authorized.remove(namespace, name, previous)
        if condition is not None:
            reason = str(condition.get("reason", ""))
            self.authorized.labels(namespace, name, reason).set(
                1 if condition.get("status") == "True" else 0
            )
            self._authorized_reasons[(namespace, name)] = reason

    def serve(self, port: int) -> None:
        if port:
            start_http_server(port, addr="0.0.0.0", registry=self.registry)  # noqa: S104
