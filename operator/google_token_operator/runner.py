"""`google-token-operator run`: wire the settings, the edges and the handlers into kopf."""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import logging
from collections.abc import Coroutine
from typing import Any

import kopf
from aiohttp import web

from . import GROUP, handlers, leader
from .consent import api as consent_api
from .consent.contract import HEALTHZ_PATH
from .consent.manager import CallbackManager
from .google_http import GoogleHttp
from .kube import Kube, load_configuration
from .leader import LeaderElection
from .metrics import Metrics
from .reconcile.context import Operator
from .settings import Settings

# Kubernetes calls run in threads (the client is synchronous); enough for bursts at start-up
# when every GoogleClient's daemon makes its first pass.
KUBE_THREADS = 16
LEASE_NAME = "google-token-operator"

LOG_FORMATS = {
    "plain": kopf.LogFormat.PLAIN,
    "full": kopf.LogFormat.FULL,
    "json": kopf.LogFormat.JSON,
}


def run(args: argparse.Namespace, settings: Settings) -> int:
    kopf.configure(verbose=args.verbose, log_format=LOG_FORMATS[settings.log_format])
    return asyncio.run(_serve(args, settings))


def build_registry(op: Operator) -> tuple[kopf.OperatorRegistry, handlers.Wakeups]:
    registry = kopf.OperatorRegistry()
    callbacks = CallbackManager(op)
    wakeups = handlers.register(registry, op, callbacks)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Our own annotations and finalizer; nothing in status.kopf (the status schema is ours).
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=GROUP, key="last-handled-configuration"
        )
        settings.persistence.finalizer = f"{GROUP}/finalizer"
        # Events are posted explicitly (condition transitions), never from log lines.
        settings.posting.loggers = False
        settings.posting.level = logging.INFO
        settings.execution.max_workers = KUBE_THREADS
        # Reconnect watches now and then so a silently dropped connection cannot go unnoticed.
        settings.watching.server_timeout = 600
        settings.watching.client_timeout = 660

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # The same sources as our own client: in-cluster, else KUBECONFIG.
        info: kopf.ConnectionInfo | None = kopf.login_via_client(**kwargs)
        return info

    @kopf.on.cleanup(registry=registry)
    async def close(**_: Any) -> None:
        await callbacks.close()
        await op.google.close()
        op.kube.close()

    return registry, wakeups


async def _serve(args: argparse.Namespace, settings: Settings) -> int:
    loop = asyncio.get_running_loop()
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=KUBE_THREADS))
    metrics = Metrics()
    metrics.serve(args.metrics_port)
    op = Operator(
        settings,
        Kube(load_configuration(), threads=KUBE_THREADS),
        GoogleHttp(settings.google, settings.http_timeout),
        metrics,
    )
    registry, wakeups = build_registry(op)
    # The consent API serves on every replica (a standby too): what it does is bound to a
    # single-use state and lands in the cluster, where the leader's watch picks it up.
    consent_server = web.AppRunner(
        consent_api.create_app(consent_api.ConsentService(op, wakeups.wake)), access_log=None
    )
    await consent_server.setup()
    if args.consent_port:
        # Reached by the callback pod only (NetworkPolicy); every answer is bound to a state.
        await web.TCPSite(consent_server, "0.0.0.0", args.consent_port).start()  # noqa: S104
    election = None
    try:
        if args.leader_election:
            election = LeaderElection(
                op.kube, settings.operator_namespace, LEASE_NAME, leader.default_identity()
            )
            await _while_alive(election.acquire(), args.liveness_port)
        return await _run_kopf(args, registry, settings, election)
    finally:
        await consent_server.cleanup()


async def _while_alive(waiting: Coroutine[Any, Any, None], liveness_port: int) -> None:
    """Answer the liveness probe while a standby waits; kopf takes the port once it leads."""

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="standby")

    app = web.Application()
    app.router.add_get(HEALTHZ_PATH, healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    if liveness_port:
        await web.TCPSite(runner, "0.0.0.0", liveness_port).start()  # noqa: S104
    try:
        await waiting
    finally:
        await runner.cleanup()


async def _run_kopf(
    args: argparse.Namespace,
    registry: kopf.OperatorRegistry,
    settings: Settings,
    election: LeaderElection | None,
) -> int:
    """Run kopf; with leader election, stop it (exit 1) as soon as the Lease is lost."""
    namespaces = [] if args.all_namespaces else list(args.namespace or settings.watch_namespaces)
    stop = asyncio.Event()
    operator = asyncio.create_task(
        kopf.operator(
            registry=registry,
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=True,  # one active replica is ensured by the Lease, not kopf peering
            stop_flag=stop,
            liveness_endpoint=(
                f"http://0.0.0.0:{args.liveness_port}{HEALTHZ_PATH}" if args.liveness_port else None
            ),
        )
    )
    if election is None:
        await operator
        return 0
    holding = asyncio.create_task(election.hold())
    await asyncio.wait({operator, holding}, return_when=asyncio.FIRST_COMPLETED)
    if operator.done():  # stopped by a signal: hand over at once instead of in 15 s
        holding.cancel()
        await operator
        await election.release()
        return 0
    stop.set()  # the Lease is lost: another replica may act now
    await operator
    return 1
