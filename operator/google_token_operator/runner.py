"""`google-token-operator run`: wire the settings, the edges and the handlers into kopf."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.metadata
import logging
import signal
import socket
import sys
from collections.abc import Coroutine, Mapping
from typing import Any

import aiohttp
import kopf
from aiohttp import web

from . import GROUP, handlers, leader, logs
from .allocator import return_large_blocks
from .consent import api as consent_api
from .consent.apikey import KeyCheck
from .consent.manager import CallbackManager
from .consent_state.contract import HEALTHZ_PATH
from .google_http import GoogleHttp
from .kube import ConfigError, Kube, KubeConfig, load_config
from .leader import LeaderElection
from .metrics import Metrics
from .reconcile.deletion import Janitor
from .reconcile.grant_limit import GrantLimit
from .runtime.cluster import ClusterView
from .runtime.context import Operator
from .runtime.memory import WriteMemory
from .settings import Settings
from .webhook_http import WebhookHttp, policy_from_settings

LEASE_NAME = "google-token-operator"
# kopf's connections to the API server: one per watch it holds (GoogleClients in each watched
# namespace, or one cluster-wide), room for its observers (CRDs, namespaces), and these for
# its calls (finalizer and annotation patches).
KOPF_CALL_CONNECTIONS = 8
KOPF_OBSERVERS = 2
VERSION_TEXT = importlib.metadata.version("google-token-operator")
logger = logging.getLogger(__name__)


class StartError(Exception):
    """The operator cannot start as configured; the message names the setting or the port."""


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Exit code 2, one line and no traceback when the configuration or a port is wrong."""
    logs.configure(args.verbose, settings.log_format)
    try:
        config = load_config()
    except (ConfigError, OSError) as error:
        return _refused(f"Kubernetes configuration (KUBECONFIG): {error}")
    try:
        check_ports(ports(args))
        for line in logs.banner(
            VERSION_TEXT,
            watched_namespaces(args, settings),
            settings.operator_namespace,
            ports(args),
            settings.google,
            args.leader_election,
        ):
            logger.info(line)
        return_large_blocks()
        return asyncio.run(_serve(args, settings, config))
    except StartError as error:
        return _refused(str(error))


def _refused(why: str) -> int:
    print(f"google-token-operator: cannot start: {why}", file=sys.stderr, flush=True)
    return 2


def ports(args: argparse.Namespace) -> dict[str, int]:
    """The ports it listens on by their option's name (0: off)."""
    return {
        "consent": args.consent_port,
        "metrics": args.metrics_port,
        "liveness": args.liveness_port,
    }


def check_ports(wanted: Mapping[str, int]) -> None:
    """Each port can be listened on, tried before anything starts: kopf would otherwise fail
    on its liveness port with a traceback, after the other servers started."""
    for name, port in wanted.items():
        if port:
            with socket.socket() as probe:
                # As the servers bind: a port in TIME_WAIT is free to them.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(("0.0.0.0", port))  # noqa: S104
                except OSError as error:
                    raise StartError(_busy(name, port, error)) from None


def _busy(name: str, port: int, error: OSError) -> str:
    return f"port {port} (--{name}-port) cannot be listened on: {error.strerror or error}"


def watched_namespaces(args: argparse.Namespace, settings: Settings) -> list[str]:
    """Empty: all namespaces."""
    return [] if args.all_namespaces else list(args.namespace or settings.watch_namespaces)


def kopf_connections(namespaces: list[str]) -> int:
    """kopf's pool, sized so its watches (one per namespace, or one) never take its calls'."""
    return max(len(namespaces), 1) + KOPF_OBSERVERS + KOPF_CALL_CONNECTIONS


def build_registry(
    op: Operator, config: KubeConfig, user_agent: str, connections: int
) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    callbacks = CallbackManager(op)
    handlers.register(registry, op, callbacks)

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
        # Reconnect watches now and then so a silently dropped connection cannot go unnoticed;
        # and no API call may hang without a limit.
        settings.watching.server_timeout = 600
        settings.watching.client_timeout = 660
        settings.networking.request_timeout = op.kube.timeout.total_seconds()
        settings.networking.connect_timeout = op.kube.timeout.total_seconds()

    @kopf.on.login(registry=registry)
    async def login(**_: Any) -> kopf.AiohttpSession:
        # The same source as the operator's own client (in-cluster, else KUBECONFIG), and a
        # session of our own: kopf's default opens a TLS connection per concurrent request
        # (thousands at a first start), ours keeps a few and reuses them.
        token, expires_at = config.current_token()
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=connections,
                ssl=config.ssl_context if config.ssl_context is not None else False,
            ),
            headers={**config.auth_headers(), "User-Agent": f"kopf ({user_agent})"},
        )
        return kopf.AiohttpSession(
            server=config.server,
            default_namespace=config.default_namespace,
            expiration=expires_at if token else None,
            aiohttp_session=session,
        )

    @kopf.on.cleanup(registry=registry)
    async def close(**_: Any) -> None:
        await callbacks.close()

    return registry


def leader_election(
    config: KubeConfig, settings: Settings, identity: str, user_agent: str
) -> LeaderElection:
    """The Lease on a connection of its own: no watch or burst of calls can delay a renewal."""
    kube = Kube(config, settings.kube_timeout, connections=1, user_agent=user_agent)
    return LeaderElection(kube, settings.operator_namespace, LEASE_NAME, identity, settings.leader)


async def _serve(args: argparse.Namespace, settings: Settings, config: KubeConfig) -> int:
    metrics = Metrics()
    try:
        metrics.serve(args.metrics_port)
    except OSError as error:  # taken since it was checked
        raise StartError(_busy("metrics", args.metrics_port, error)) from None
    identity = leader.default_identity()
    # The identity in every request's User-Agent: an audit log tells the replicas apart.
    user_agent = f"google-token-operator/{VERSION_TEXT} ({identity})"
    kube = Kube(config, settings.kube_timeout, user_agent=user_agent)
    google = GoogleHttp(settings.google, settings.http_timeout)
    # The consent API serves on every replica (a standby too): what it does is bound to a
    # single-use state and lands in the cluster, where the leader's watch picks it up. It
    # watches nothing, so it reads the few Secrets it needs; its client is not fenced by the
    # leader election (a standby's consent must land too).
    consent_kube = Kube(config, settings.kube_timeout, user_agent=user_agent)
    # It lists the private Secrets of the namespaces the leader watches (a revoke it
    # considers: runtime.kept_grants).
    served = tuple(watched_namespaces(args, settings))
    consent_settings = dataclasses.replace(settings, watch_namespaces=served)
    consent_op = Operator(consent_settings, consent_kube, google, metrics)
    consent_server = web.AppRunner(
        consent_api.create_app(
            consent_api.ConsentService(consent_op),
            KeyCheck(consent_kube, settings.operator_namespace),
        ),
        access_log=None,
    )
    await consent_server.setup()
    election = None
    try:
        if args.consent_port:
            # Reached by the callback pod only (NetworkPolicy); every answer is bound to a state.
            site = web.TCPSite(consent_server, "0.0.0.0", args.consent_port)  # noqa: S104
            try:
                await site.start()
            except OSError as error:  # taken since it was checked
                raise StartError(_busy("consent", args.consent_port, error)) from None
        if args.leader_election:
            election = leader_election(config, settings, identity, user_agent)
            if not await _while_alive(election.acquire(), args.liveness_port):
                # Stopped while a standby. Had the Lease just been won, give it back.
                await election.release()
                return 0
            # From here on every Kubernetes write checks that the Lease is still ours.
            kube.write_window = election.fence.remaining
        metrics.leader.set_function(lambda: 1.0 if kube.write_window() > 0 else 0.0)
        return await _lead(args, settings, kube, google, metrics, config, election)
    finally:
        await consent_server.cleanup()
        await google.close()
        await kube.close()
        await consent_kube.close()
        if election is not None:
            await election.kube.close()


async def _lead(
    args: argparse.Namespace,
    settings: Settings,
    kube: Kube,
    google: GoogleHttp,
    metrics: Metrics,
    config: KubeConfig,
    election: LeaderElection | None,
) -> int:
    """Watch, run kopf; with leader election, stop (exit 1) as soon as the Lease is lost."""
    namespaces = watched_namespaces(args, settings)
    janitor: Janitor | None = None

    def branch_changed(*change: Any) -> None:
        if janitor is not None:
            janitor.branch_changed(*change)

    memory = WriteMemory()
    view = ClusterView(kube, namespaces, settings.operator_namespace, memory, branch_changed)
    webhooks = WebhookHttp(
        await policy_from_settings(settings, [config.server]), may_send=lambda: kube.write_window()
    )
    op = Operator(settings, kube, google, metrics, view=view, memory=memory, webhooks=webhooks)
    janitor = Janitor(op, logger)
    background = [
        asyncio.create_task(view.run(), name="watches"),
        asyncio.create_task(janitor.run(), name="janitor"),
        asyncio.create_task(GrantLimit(op).run(), name="grant-limit"),
    ]
    stop = asyncio.Event()
    operator = asyncio.create_task(
        kopf.operator(
            registry=build_registry(op, config, kube.user_agent, kopf_connections(namespaces)),
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=True,  # one active replica is ensured by the Lease, not kopf peering
            stop_flag=stop,
            liveness_endpoint=(
                f"http://0.0.0.0:{args.liveness_port}{HEALTHZ_PATH}" if args.liveness_port else None
            ),
        )
    )
    try:
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
    finally:
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await webhooks.close()


# The signals that stop the operator (kopf handles them once it runs).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def _while_alive(waiting: Coroutine[Any, Any, None], liveness_port: int) -> bool:
    """Answer the liveness probe while a standby waits; kopf takes the port once it leads.

    True once ``waiting`` is done; False if SIGTERM or SIGINT came first. In a container the
    operator is PID 1, for which the kernel ignores a signal with no handler: without this one
    a standby's pod would wait out its whole termination grace period on every rollout.
    """

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="standby")

    app = web.Application()
    app.router.add_get(HEALTHZ_PATH, healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    stopped = False
    task = asyncio.ensure_future(waiting)

    def stop() -> None:
        nonlocal stopped
        stopped = True
        task.cancel()

    try:
        for signum in STOP_SIGNALS:
            # Only the main thread's loop can handle signals (in-process tests run elsewhere).
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, stop)
                handled.append(signum)
        if liveness_port:
            await web.TCPSite(runner, "0.0.0.0", liveness_port).start()  # noqa: S104
        await task
    except asyncio.CancelledError:
        if not stopped:
            raise
    finally:
        task.cancel()
        for signum in handled:
            loop.remove_signal_handler(signum)
        await runner.cleanup()
    return not stopped
