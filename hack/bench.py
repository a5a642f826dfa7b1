"""`make bench`: the operator at scale, against the bare-kopf floor, on the local control plane.

For each size (GoogleClients with 4 Branches each, pre-authorized as the tests do: a refresh
token in each private Secret, no access token yet) on a fresh control plane and the sandbox:

1. first start: time until every client and Branch is Ready; CPU seconds, peak RSS, API
   writes and reads, passes per client (1 when nothing but the start wakes a client: its
   own writes, a consent Secret included, wake nothing); the same for a bare kopf operator
   (no-op handlers) on the same objects;
2. idle with fresh tokens: CPU share and API requests per minute;
3. restart: time until steady again, token calls to Google meanwhile (0 for fresh tokens);
4. burst: every token issued in the same second and due at once, refreshed by one replica:
   time, refreshes per second, Kubernetes writes/reads and Google calls per refresh, and a
   histogram of when the refreshes happened (the jitter spreads them);
5. with `--noise`: 10,000 unrelated 50 KB Secrets in other namespaces, restart again.

Prints a table and writes the figures as JSON (`--json`). Not part of `make test` (minutes to
tens of minutes); `tests/cluster/test_bench_smoke.py` runs it at 20 clients so it cannot rot.

    PYTHONPATH=hack .venv/bin/python hack/bench.py --sizes 500,2000,5000 --noise 10000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests

from devkit import ControlPlane, ensure_binaries
from devkit.servers import SandboxServer
from google_token_operator import GROUP, VERSION
from google_token_operator.kube import Kube, KubeError, load_config
from google_token_operator.kube.api import resource_path, secret_path
from google_token_operator.runner import LEASE_NAME
from google_token_operator.timeutil import format_rfc3339, parse_rfc3339
from google_token_sandbox.demo_data import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    OWNER_ACCOUNT_ID,
    OWNER_LOCATION_IDS,
)
from google_token_sandbox.state import SandboxState

REPO = Path(__file__).resolve().parents[1]
BRANCHES = 4
PER_NAMESPACE = 100
SCOPES = "https://www.googleapis.com/auth/business.manage email openid"
CONCURRENCY = 48
READY_TIMEOUT = 1800.0
WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE")
READ_VERBS = ("GET", "LIST", "WATCH")


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- measuring ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Usage:
    cpu: float  # seconds of CPU, user + system
    rss: int  # bytes now
    peak_rss: int  # bytes, the process's high-water mark


def usage(pid: int) -> Usage:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return Usage(
        cpu=(int(fields[11]) + int(fields[12])) / ticks,
        rss=int(status["VmRSS"].split()[0]) * 1024,
        peak_rss=int(status["VmHWM"].split()[0]) * 1024,
    )


def api_requests(plane: ControlPlane) -> dict[str, float]:
    """The API server's request counts by verb, and bytes answered to Secret lists."""
    text = requests.get(
        f"{plane.server}/metrics",
        headers={"Authorization": f"Bearer {plane.admin_token}"},
        verify=str(plane.ca_file),
        timeout=30,
    ).text
    totals: dict[str, float] = collections.defaultdict(float)
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{"):
            labels, value = line.rsplit(" ", 1)
            verb = labels.split('verb="', 1)[1].split('"', 1)[0]
            totals[verb] += float(value)
        elif line.startswith("apiserver_response_sizes_sum{") and all(
            part in line for part in ('resource="secrets"', 'verb="LIST"')
        ):
            totals["secret_list_bytes"] += float(line.rsplit(" ", 1)[1])
    return dict(totals)


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after}


def writes(counts: dict[str, float]) -> float:
    return sum(counts.get(verb, 0.0) for verb in WRITE_VERBS)


def reads(counts: dict[str, float]) -> float:
    return sum(counts.get(verb, 0.0) for verb in READ_VERBS)


def operator_metrics(metrics_port: int) -> str:
    """The operator's /metrics text ("" while it does not answer)."""
    try:
        return requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).text
    except requests.RequestException:
        return ""


def ready_counts(metrics_port: int) -> dict[str, int]:
    """How many GoogleClients and Branches the operator reports Ready (its own gauges)."""
    counts: dict[str, int] = collections.Counter()
    for line in operator_metrics(metrics_port).splitlines():
        if line.startswith("google_token_operator_ready_status{") and line.endswith(" 1.0"):
            counts[line.split('kind="', 1)[1].split('"', 1)[0]] += 1
    return dict(counts)


def client_passes(metrics_port: int) -> float:
    """How many passes the operator ran over GoogleClients (its own counter)."""
    for line in operator_metrics(metrics_port).splitlines():
        if line.startswith("google_token_operator_client_passes_total "):
            return float(line.split()[1])
    raise SystemExit("the operator reports no google_token_operator_client_passes_total")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the world -------------------------------------------------------------------------------


def namespaces(clients: int, per_namespace: int = PER_NAMESPACE) -> list[str]:
    return [f"bench-{index}" for index in range((clients + per_namespace - 1) // per_namespace)]


def client_names(clients: int, per_namespace: int = PER_NAMESPACE) -> Iterator[tuple[str, str]]:
    for index in range(clients):
        yield f"bench-{index // per_namespace}", f"client-{index}"


async def populate(
    kube: Kube,
    state: SandboxState,
    clients: int,
    per_namespace: int = PER_NAMESPACE,
    branches: int = BRANCHES,
) -> None:
    """Namespaces, credentials, GoogleClients with refresh tokens in owned private Secrets,
    and their Branches, created concurrently."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with gate:
            for attempt in range(10):
                try:
                    return await kube.request("POST", path, body=body)
                except KubeError as error:
                    if error.status == 409:
                        return {}
                    if not error.retryable or attempt == 9:
                        raise
                    await asyncio.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    for namespace in namespaces(clients, per_namespace):
        await post("/api/v1/namespaces", {"metadata": {"name": namespace}})
        await post(secret_path(namespace), secret_body(namespace, "acme-oauth", {
            "client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET}))  # fmt: skip

    async def one(namespace: str, name: str) -> None:
        body = await post(
            resource_path("googleclients", namespace),
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "GoogleClient",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"credentialsSecretRef": {"name": "acme-oauth"}},
            },
        )
        owner = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "GoogleClient",
            "name": name,
            "uid": body["metadata"]["uid"],
            "controller": True,
        }
        # One Google account per client: Google keeps 100 live refresh tokens per account and
        # OAuth client, so thousands of grants of one account would kill each other.
        account = f"{name}@bench.example.com"
        state.add_user(account)
        state.business.add_manager(OWNER_ACCOUNT_ID, account)
        refresh_token = state.mint_grant(DEMO_CLIENT_ID, account, SCOPES.split())
        private = secret_body(
            namespace,
            f"{name}-google-oauth",
            {"refresh_token": refresh_token, "client_id": DEMO_CLIENT_ID, "scopes": SCOPES},
            labels={
                "app.kubernetes.io/managed-by": "google-token-operator",
                "google-token-operator.dev/client": name,
                "google-token-operator.dev/role": "private",
            },
        )
        private["metadata"]["ownerReferences"] = [owner]
        await post(secret_path(namespace), private)
        for branch in range(branches):
            await post(
                resource_path("branches", namespace),
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "Branch",
                    "metadata": {"name": f"{name}-b{branch}", "namespace": namespace},
                    "spec": {
                        "clientRef": {"name": name},
                        "accountId": OWNER_ACCOUNT_ID,
                        "locationId": OWNER_LOCATION_IDS[branch % len(OWNER_LOCATION_IDS)],
                    },
                },
            )

    names = client_names(clients, per_namespace)
    await asyncio.gather(*(one(namespace, name) for namespace, name in names))


def secret_body(
    namespace: str, name: str, plain: dict[str, str], labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in plain.items()},
    }


async def add_noise(kube: Kube, count: int, size: int) -> None:
    """Unrelated Secrets, as Helm and applications keep them, in namespaces of their own."""
    gate = asyncio.Semaphore(CONCURRENCY)
    payload = base64.b64encode(os.urandom(size * 3 // 4)).decode()
    spaces = [f"noise-{index}" for index in range((count + 999) // 1000)]
    for namespace in spaces:
        with contextlib.suppress(KubeError):
            await kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": namespace}})

    async def one(index: int) -> None:
        namespace = spaces[index // 1000]
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "helm.sh/release.v1",
            "metadata": {"name": f"sh.helm.release.v1.app{index}.v1", "namespace": namespace,
                         "labels": {"owner": "helm", "name": f"app{index}"}},
            "data": {"release": payload},
        }  # fmt: skip
        async with gate:
            await kube.request("POST", secret_path(namespace), body=body)

    await asyncio.gather(*(one(index) for index in range(count)))


async def make_all_due(kube: Kube, clients: int, issued: dt.datetime) -> None:
    """Every token issued at `issued` (the same second) with Google's hour-long lifetime."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(namespace: str, name: str) -> None:
        async with gate:
            secret = await kube.get_secret(namespace, f"{name}-google-oauth")
            assert secret is not None
            data = dict(secret["data"])
            data["issued_at"] = base64.b64encode(format_rfc3339(issued).encode()).decode()
            data["expiry"] = base64.b64encode(
                format_rfc3339(issued + dt.timedelta(hours=1)).encode()
            ).decode()
            await kube.merge_patch_secret(namespace, f"{name}-google-oauth", {"data": data})

    await asyncio.gather(*(one(namespace, name) for namespace, name in client_names(clients)))


def run_async(coroutine_factory: Callable[[Kube], Any], kubeconfig: Path) -> Any:
    async def main() -> Any:
        os.environ["KUBECONFIG"] = str(kubeconfig)
        kube = Kube(load_config(), timeout=dt.timedelta(seconds=60), connections=CONCURRENCY)
        try:
            return await coroutine_factory(kube)
        finally:
            await kube.close()

    return asyncio.run(main())


# -- processes -------------------------------------------------------------------------------


class Process:
    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()


@dataclasses.dataclass
class World:
    plane: ControlPlane
    sandbox: SandboxServer
    clients: int
    workdir: Path
    branches: int = BRANCHES
    # The namespaced mode: these namespaces, with --leader-election; else all namespaces.
    watched: list[str] = dataclasses.field(default_factory=list)

    def operator(self, metrics_port: int, log: str) -> Process:
        env = {
            **os.environ,
            **self.sandbox.env,
            "KUBECONFIG": str(self.plane.kubeconfig),
            "OPERATOR_NAMESPACE": (self.watched or namespaces(self.clients))[0],
            "PYTHONUNBUFFERED": "1",
        }
        scope = [f"--namespace={ns}" for ns in self.watched] + ["--leader-election"]
        argv = [sys.executable, "-m", "google_token_operator", "run",
                *(scope if self.watched else ["--all-namespaces"]),
                "--metrics-port", str(metrics_port), "--liveness-port", "0",
                "--consent-port", "0"]  # fmt: skip
        return Process(argv, env, self.workdir / log)

    def bare_kopf(self, log: str, daemons: bool = False) -> Process:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.plane.kubeconfig),
            "BENCH_FLOOR_DAEMONS": "1" if daemons else "",
        }
        argv = [sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces",
                str(REPO / "hack" / "bench_bare_kopf.py")]  # fmt: skip
        return Process(argv, env, self.workdir / log)

    def wait_ready(self, process: Process, metrics_port: int, started: float) -> float:
        """Seconds from `started` until the operator reports every client and Branch Ready."""
        wanted = {"GoogleClient": self.clients, "Branch": self.clients * self.branches}
        while time.monotonic() - started < READY_TIMEOUT:
            if process.popen.poll() is not None:
                raise SystemExit(f"the operator exited; see {process.log}")
            counts = ready_counts(metrics_port)
            if all(counts.get(kind, 0) >= count for kind, count in wanted.items()):
                return time.monotonic() - started
            time.sleep(1.0)
        raise SystemExit(f"not all Ready after {READY_TIMEOUT:.0f} s: {ready_counts(metrics_port)}")


def settle(process: Process, quiet_seconds: float = 10.0, limit: float = 300.0) -> None:
    """Until the process has used almost no CPU for `quiet_seconds` (its start-up is over)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = usage(process.pid).cpu
        time.sleep(quiet_seconds)
        if usage(process.pid).cpu - before < 0.05 * quiet_seconds:
            return


# -- one size --------------------------------------------------------------------------------


def measure(clients: int, noise: int, idle_seconds: float, workdir: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"clients": clients, "branches": clients * BRANCHES}
    state = SandboxState()
    state.api_quota_per_minute = 10**9  # the benchmark measures the operator, not quotas
    with ControlPlane(ensure_binaries()) as plane, SandboxServer(state) as sandbox:
        install_crds(plane)
        world = World(plane, sandbox, clients, workdir)
        started = time.monotonic()
        run_async(lambda kube: populate(kube, state, clients), plane.kubeconfig)
        say(f"{clients} clients populated in {time.monotonic() - started:.0f} s")

        # 1. the bare kopf floors (without and with a daemon per client), then the operator's
        # first start, on the same objects
        for name, daemons in (("bare_kopf", False), ("kopf_daemons", True)):
            floor = world.bare_kopf(f"{name}.log", daemons)
            settle(floor)
            floor_usage = usage(floor.pid)
            floor.stop()
            result[name] = {
                "cpu_s": floor_usage.cpu,
                "rss_mb": floor_usage.rss / 2**20,
                "peak_rss_mb": floor_usage.peak_rss / 2**20,
            }
            say(f"{name}: {result[name]}")

        port = free_port()
        before = api_requests(plane)
        calls_before = state.counts["token.refresh_token"]
        started = time.monotonic()
        operator = world.operator(port, "operator-first.log")
        ready = world.wait_ready(operator, port, started)
        first = usage(operator.pid)
        api = delta(api_requests(plane), before)
        settle(operator)
        steady = usage(operator.pid)
        result["first_start"] = {
            "ready_s": ready,
            "cpu_s": first.cpu,
            "peak_rss_mb": steady.peak_rss / 2**20,
            "steady_rss_mb": steady.rss / 2**20,
            "api_writes": writes(api),
            "api_reads": reads(api),
            "writes_per_client": writes(api) / clients,
            "google_token_calls": state.counts["token.refresh_token"] - calls_before,
            # Counted once settled: what late watch events woke after Ready counts too.
            "passes_per_client": client_passes(port) / clients,
        }
        say(f"first start: {result['first_start']}")

        # 2. idle, tokens fresh
        before, cpu_before = api_requests(plane), usage(operator.pid).cpu
        time.sleep(idle_seconds)
        idle_api = delta(api_requests(plane), before)
        per_minute = 60 / idle_seconds
        result["idle"] = {
            "cpu_percent": (usage(operator.pid).cpu - cpu_before) / idle_seconds * 100,
            "api_requests_per_minute": (writes(idle_api) + idle_api.get("GET", 0.0)
            + idle_api.get("LIST", 0.0)) * per_minute,
        }  # fmt: skip
        say(f"idle: {result['idle']}")

        # 3. restart with fresh tokens
        operator.stop()
        calls_before = state.counts["token.refresh_token"]
        started = time.monotonic()
        operator = world.operator(port, "operator-restart.log")
        result["restart"] = {
            "steady_s": world.wait_ready(operator, port, started),
            "google_token_calls": state.counts["token.refresh_token"] - calls_before,
        }
        settle(operator)
        result["restart"]["rss_mb"] = usage(operator.pid).rss / 2**20
        say(f"restart: {result['restart']}")

        # 4. the burst: every token issued in the same second, all due at once
        operator.stop()
        issued = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=40)
        run_async(lambda kube: make_all_due(kube, clients, issued), plane.kubeconfig)
        before = api_requests(plane)
        state.reset_counts()
        started = time.monotonic()
        wall_start = dt.datetime.now(dt.UTC)
        operator = world.operator(port, "operator-burst.log")
        refreshed_at = count_refreshes(state, clients, started)
        burst_s = time.monotonic() - started
        world.wait_ready(operator, port, time.monotonic())
        api = delta(api_requests(plane), before)
        expiry = issued + dt.timedelta(hours=1)
        result["burst"] = {
            "all_refreshed_s": burst_s,
            "refreshes_per_s": clients / burst_s,
            # Left on the last token refreshed (negative: consumers held an expired one).
            "margin_of_last_refresh_s": (
                expiry - wall_start - dt.timedelta(seconds=burst_s)
            ).total_seconds(),
            "google_calls_per_refresh": state.counts["token"] / clients,
            "api_writes_per_refresh": writes(api) / clients,
            "api_reads_per_refresh": reads(api) / clients,
            "histogram_10s": histogram(refreshed_at, 10.0),
        }  # fmt: skip
        say(f"burst: {result['burst']}")

        # 5. tokens issued in the same second, due within the next minute: the jitter
        # spreads their refreshes instead of making them one spike
        operator.stop()
        issued = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=39)
        run_async(lambda kube: make_all_due(kube, clients, issued), plane.kubeconfig)
        state.reset_counts()
        started = time.monotonic()
        operator = world.operator(port, "operator-jitter.log")
        moments = count_refreshes(state, clients, started)
        result["jitter"] = {
            "spread_s": max(moments) - min(moments),
            "histogram_10s": histogram(moments, 10.0),
        }
        say(f"jitter: {result['jitter']}")

        if noise:
            operator.stop()
            run_async(lambda kube: add_noise(kube, noise, 50 * 1024), plane.kubeconfig)
            say(f"{noise} unrelated Secrets of 50 KB added")
            before = api_requests(plane)
            started = time.monotonic()
            operator = world.operator(port, "operator-noise.log")
            steady_s = world.wait_ready(operator, port, started)
            settle(operator)
            noisy = usage(operator.pid)
            api = delta(api_requests(plane), before)
            result["noise"] = {
                "unrelated_secrets": noise,
                "restart_steady_s": steady_s,
                "rss_mb": noisy.rss / 2**20,
                "peak_rss_mb": noisy.peak_rss / 2**20,
                "secret_list_mb": api.get("secret_list_bytes", 0.0) / 2**20,
            }
            say(f"noise: {result['noise']}")
        operator.stop()
    return result


def install_crds(plane: ControlPlane) -> None:
    plane.kubectl("apply", "-f", str(REPO / "crds"))
    plane.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                  f"crd/googleclients.{GROUP}", f"crd/branches.{GROUP}")  # fmt: skip


# -- the namespaced mode ---------------------------------------------------------------------

NAMESPACED_BRANCHES = 2
NAMESPACED_LIFETIME = 60


async def least_token_life(kube: Kube, watched: list[str]) -> float:
    """Seconds left on the shortest-lived token in any consumer Secret (negative: expired)."""

    async def expiries(namespace: str) -> list[dt.datetime]:
        page = await kube.request("GET", secret_path(namespace))
        return [
            parse_rfc3339(base64.b64decode(item["data"]["expiry"]).decode())
            for item in page.get("items") or []
            if item["metadata"]["name"].endswith("-google-token")
            and "expiry" in (item.get("data") or {})
        ]

    found = [moment for each in await asyncio.gather(*map(expiries, watched)) for moment in each]
    return (min(found) - dt.datetime.now(dt.UTC)).total_seconds()


async def lease_holder(kube: Kube, namespace: str) -> str:
    lease = await kube.get_lease(namespace, LEASE_NAME) or {}
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def measure_namespaces(count: int, observe_seconds: float, workdir: Path) -> dict[str, Any]:
    """The namespaced mode: `count` watched namespaces and --leader-election, a GoogleClient
    with 2 Branches in each, 60 s tokens for `observe_seconds`: time to all Ready, the least
    token life any consumer Secret showed, whether the Lease holder stayed, write latency."""
    state = SandboxState()
    state.api_quota_per_minute = 10**9
    state.token_lifetime = NAMESPACED_LIFETIME
    with ControlPlane(ensure_binaries()) as plane, SandboxServer(state) as sandbox:
        install_crds(plane)
        run_async(
            lambda kube: populate(kube, state, count, 1, NAMESPACED_BRANCHES), plane.kubeconfig
        )
        watched = namespaces(count, 1)
        world = World(plane, sandbox, count, workdir, NAMESPACED_BRANCHES, watched)
        port = free_port()
        since = dt.datetime.now(dt.UTC)
        operator = world.operator(port, "operator-namespaced.log")
        ready = world.wait_ready(operator, port, time.monotonic())
        holder = run_async(lambda kube: lease_holder(kube, watched[0]), plane.kubeconfig)
        say(f"{count} namespaces: all Ready in {ready:.0f} s; Lease held by {holder}")
        refreshes = state.counts["token.refresh_token"]
        least: float = NAMESPACED_LIFETIME
        deadline = time.monotonic() + observe_seconds
        while time.monotonic() < deadline:
            if operator.popen.poll() is not None:
                raise SystemExit(f"the operator exited; see {operator.log}")
            life = run_async(lambda kube: least_token_life(kube, watched), plane.kubeconfig)
            least = min(least, life)
            time.sleep(2.0)
        kept = run_async(lambda kube: lease_holder(kube, watched[0]), plane.kubeconfig) == holder
        latencies = plane.write_latencies("google-token-operator/", set(watched), since)
        operator.stop()
    return {
        "namespaces": count,
        "branches": count * NAMESPACED_BRANCHES,
        "ready_s": ready,
        "observed_s": observe_seconds,
        "refreshes": state.counts["token.refresh_token"] - refreshes,
        "least_token_life_s": least,
        "lease_holder_kept": kept,
        "writes": len(latencies),
        "write_p50_ms": latencies[len(latencies) // 2] * 1000,
        "write_p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "write_max_ms": latencies[-1] * 1000,
    }


def count_refreshes(state: SandboxState, clients: int, started: float) -> list[float]:
    """Seconds after `started` at which each of `clients` refreshes reached the sandbox."""
    moments: list[float] = []
    while len(moments) < clients:
        if time.monotonic() - started > READY_TIMEOUT:
            raise SystemExit(f"only {len(moments)} of {clients} refreshed in time")
        seen = state.counts["token.refresh_token"]
        moments += [time.monotonic() - started] * (min(seen, clients) - len(moments))
        time.sleep(0.5)
    return moments


def histogram(moments: list[float], width: float) -> list[int]:
    buckets = [0] * (int(max(moments, default=0) // width) + 1)
    for moment in moments:
        buckets[int(moment // width)] += 1
    return buckets


# -- report ----------------------------------------------------------------------------------


def figures(r: dict[str, Any]) -> dict[str, str]:
    """One size's results as the table's cells."""
    first, floor, daemons, burst = r["first_start"], r["bare_kopf"], r["kopf_daemons"], r["burst"]
    cells = {
        "first start: all Ready (s)": f"{first['ready_s']:.1f}",
        "first start: CPU s / peak RSS MB": f"{first['cpu_s']:.0f} / {first['peak_rss_mb']:.0f}",
        "bare kopf: CPU s / RSS MB": f"{floor['cpu_s']:.0f} / {floor['rss_mb']:.0f}",
        "steady RSS / bare-kopf RSS": f"{first['steady_rss_mb'] / floor['rss_mb']:.2f}",
        "peak RSS / bare-kopf peak": f"{first['peak_rss_mb'] / floor['peak_rss_mb']:.2f}",
        "kopf + a daemon per client: CPU s / RSS MB": (
            f"{daemons['cpu_s']:.0f} / {daemons['rss_mb']:.0f}"
        ),
        "steady RSS / kopf-with-daemons RSS": f"{first['steady_rss_mb'] / daemons['rss_mb']:.2f}",
        "first start: API writes per client": f"{first['writes_per_client']:.1f}",
        "first start: passes per client": f"{first['passes_per_client']:.2f}",
        "idle: CPU % of a core / API req per min": (
            f"{r['idle']['cpu_percent']:.2f} / {r['idle']['api_requests_per_minute']:.0f}"
        ),
        "restart: steady (s) / token calls": (
            f"{r['restart']['steady_s']:.1f} / {r['restart']['google_token_calls']}"
        ),
        "burst, all due: refreshed in (s) / per s": (
            f"{burst['all_refreshed_s']:.0f} / {burst['refreshes_per_s']:.1f}"
        ),
        "per refresh: Google calls / writes / reads": (
            f"{burst['google_calls_per_refresh']:.2f} / {burst['api_writes_per_refresh']:.1f} / "
            f"{burst['api_reads_per_refresh']:.1f}"
        ),
        "issued in one second: refreshes spread over (s)": f"{r['jitter']['spread_s']:.0f}",
    }
    if "noise" in r:
        noise = r["noise"]
        cells["unrelated Secrets: restart s / RSS MB"] = (
            f"{noise['restart_steady_s']:.1f} / {noise['rss_mb']:.0f} (without: "
            f"{r['restart']['steady_s']:.1f} / {r['restart']['rss_mb']:.0f})"
        )
    return cells


def table(results: list[dict[str, Any]]) -> str:
    cells = [figures(result) for result in results]
    lines = [
        "| | " + " | ".join(f"{r['clients']} clients" for r in results) + " |",
        "|---" * (len(results) + 1) + "|",
    ]
    for label in cells[0]:
        lines.append(f"| {label} | " + " | ".join(c.get(label, "-") for c in cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="500,2000,5000", help="client counts (comma separated)")
    parser.add_argument(
        "--noise", type=int, default=0, help="unrelated 50 KB Secrets, at the smallest size"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument(
        "--idle-seconds", type=float, default=60.0, help="how long idle is measured"
    )
    parser.add_argument(
        "--namespaces",
        type=int,
        default=0,
        help="instead: the namespaced mode with this many watched namespaces (see --observe)",
    )
    parser.add_argument(
        "--observe", type=float, default=300.0, help="namespaced mode: seconds of 60 s tokens"
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    workdir = Path(os.environ.get("BENCH_WORKDIR") or tempfile.mkdtemp(prefix="gto-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.namespaces:
        results = [measure_namespaces(args.namespaces, args.observe, workdir)]
        print(json.dumps(results[0], indent=2))
    else:
        results = [
            measure(size, args.noise if size == min(sizes) else 0, args.idle_seconds, workdir)
            for size in sizes
        ]
        print(table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "kernel": platform.release()},
            "date": dt.date.today().isoformat(),
            "results": results,
        }, indent=2) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
