"""Prometheus metrics, named in the style of cert-manager. Labels never carry secret values."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

PREFIX = "google_token_operator"


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
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
            with contextlib.suppress(KeyError):
                self.token_expiration.remove(namespace, name)

    def serve(self, port: int) -> None:
        if port:
            start_http_server(port, addr="0.0.0.0", registry=self.registry)  # noqa: S104
