"""The Kubernetes client's connections against a local HTTP server that counts what it got:
watches, calls and the Lease never starve each other, and a write never leaves after the
write window (the leader's fence) closed, however long it waited for a connection."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from stand_in import serving

from google_token_operator import runner
from google_token_operator.election import Fence
from google_token_operator.kube import Kube, KubeConfig, KubeError, StatusConflict, WriteFenced
from google_token_operator.kube.api import lease_path, resource_path
from google_token_operator.settings import Settings

LEASE = lease_path("gto", runner.LEASE_NAME)
WRITE = resource_path("googleclients", "team", "acme")


class Api:
    """A stand-in API server: `/hold` answers once `release` is set, `/stall` never, a watch
    streams nothing until closed; the Lease and one GoogleClient are kept in memory."""

    def __init__(self) -> None:
        self.received: collections.Counter[str] = collections.Counter()
        self.release = asyncio.Event()
        self.watching = 0
        self.lease: dict[str, Any] | None = None
        self.client = {"metadata": {"name": "acme", "resourceVersion": "7"}, "status": {}}
        self.patches: list[dict[str, Any]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/hold", self.hold)
        app.router.add_patch("/stall", self.stall)
        app.router.add_get("/watch", self.watch)
        app.router.add_get("/ping", self.ping)
        app.router.add_patch(WRITE, self.write)
        app.router.add_patch(WRITE + "/status", self.patch_status)
        app.router.add_get(LEASE, self.get_lease)
        app.router.add_post(lease_path("gto"), self.create_lease)
        app.router.add_put(LEASE, self.replace_lease)
        return app

    async def hold(self, _: web.Request) -> web.Response:
        await self.release.wait()
        return web.json_response({})

    async def stall(self, request: web.Request) -> web.Response:
        self.received[f"{request.method} {request.path}"] += 1
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def watch(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        self.watching += 1
        try:
            await asyncio.Event().wait()
        finally:
            self.watching -= 1
        return response

    async def ping(self, _: web.Request) -> web.Response:
        return web.json_response({"kind": "Status"})

    async def write(self, request: web.Request) -> web.Response:
        self.received[f"{request.method} {request.path}"] += 1
        return web.json_response({})

    async def patch_status(self, request: web.Request) -> web.Response:
        patch = await request.json()
        self.patches.append(patch)
        expected = (patch.get("metadata") or {}).get("resourceVersion")
        meta = self.client["metadata"]
        if expected != meta["resourceVersion"]:
            return web.json_response({"reason": "Conflict", "message": "modified"}, status=409)
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        self.client["status"] = {**self.client["status"], **patch["status"]}
        return web.json_response(self.client)

    async def get_lease(self, _: web.Request) -> web.Response:
        if self.lease is None:
            return web.json_response({"reason": "NotFound"}, status=404)
        return web.json_response(self.lease)

    async def create_lease(self, request: web.Request) -> web.Response:
        self.received["lease writes"] += 1
        self.lease = await request.json()
        self.lease["metadata"]["resourceVersion"] = "1"
        return web.json_response(self.lease, status=201)

    async def replace_lease(self, request: web.Request) -> web.Response:
        self.received["lease writes"] += 1
        lease = await request.json()
        assert self.lease is not None
        lease["metadata"]["resourceVersion"] = str(
            int(self.lease["metadata"]["resourceVersion"]) + 1
        )
        self.lease = lease
        return web.json_response(lease)


@pytest.fixture
async def api() -> AsyncIterator[tuple[Api, KubeConfig]]:
    stand_in = Api()
    async with serving(stand_in.app()) as url:
        try:
            yield stand_in, KubeConfig(server=url, ssl_context=None)
        finally:
            stand_in.release.set()


@contextlib.asynccontextmanager
async def kube_of(config: KubeConfig, connections: int) -> AsyncIterator[Kube]:
    kube = Kube(config, connections=connections)
    try:
        yield kube
    finally:
        await kube.close()


async def until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not predicate():  # noqa: ASYNC110 - the server's state is polled
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def busy(
    kube: Kube, server: Api, watches: int, calls: int = 0
) -> AsyncIterator[list[asyncio.Task[Any]]]:
    """`watches` watches streaming and `calls` calls held open, until the block ends."""

    async def follow() -> None:
        async for _ in kube.watch("/watch", {}):
            pass

    tasks: list[asyncio.Task[Any]] = [asyncio.create_task(follow()) for _ in range(watches)]
    tasks += [asyncio.create_task(kube.request("GET", "/hold")) for _ in range(calls)]
    try:
        await until(lambda: server.watching == watches)
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def open_for(seconds: float) -> Fence:
    fence = Fence()
    fence.extend(time.monotonic() + seconds - fence.renew_deadline.total_seconds())
    return fence


@pytest.mark.parametrize(("window", "sent"), [(0.3, 0), (5.0, 1)])
async def test_a_write_is_sent_only_if_its_window_is_open_once_it_has_a_connection(
    api: tuple[Api, KubeConfig], window: float, sent: int
) -> None:
    server, config = api
    async with kube_of(config, connections=1) as kube:
        kube.write_window = open_for(window).remaining
        holder = asyncio.create_task(kube.request("GET", "/hold"))  # the one connection
        write = asyncio.create_task(kube.request("PATCH", WRITE, body={}))
        await asyncio.sleep(0.6)  # a 0.3 s window closes while the write waits
        assert not write.done()
        server.release.set()
        await holder
        if sent:
            await write
        else:
            with pytest.raises(WriteFenced):
                await write
    assert server.received[f"PATCH {WRITE}"] == sent


async def test_a_write_is_given_up_when_its_window_closes_not_at_its_timeout(
    api: tuple[Api, KubeConfig],
) -> None:
    server, config = api
    async with kube_of(config, connections=4) as kube:  # timeout: 15 s
        kube.write_window = open_for(0.5).remaining
        started = time.monotonic()
        with pytest.raises(WriteFenced):
            await kube.request("PATCH", "/stall", body={})
        elapsed = time.monotonic() - started
    assert server.received["PATCH /stall"] == 1
    assert elapsed < 1.5


async def test_calls_go_through_while_many_watches_are_open(api: tuple[Api, KubeConfig]) -> None:
    server, config = api
    async with kube_of(config, connections=4) as kube, busy(kube, server, watches=40):
        async with asyncio.timeout(2):
            assert await kube.request("GET", "/ping") == {"kind": "Status"}


async def test_the_lease_is_renewed_while_the_operators_calls_and_watches_are_saturated(
    api: tuple[Api, KubeConfig],
) -> None:
    server, config = api
    settings = Settings(operator_namespace="gto")
    election = runner.leader_election(config, settings, "me", "test")
    try:
        async with (
            kube_of(config, connections=4) as kube,
            busy(kube, server, watches=40, calls=20) as tasks,
        ):
            async with asyncio.timeout(2):
                await election.acquire()  # creates the Lease
                assert await election._attempt()  # renews it
            assert not any(task.done() for task in tasks)  # all still waiting or streaming
    finally:
        await election.kube.close()
    assert server.received["lease writes"] == 2
    assert election.fence.open()


async def test_a_status_patch_carries_its_version_and_a_conflict_is_not_overwritten(
    api: tuple[Api, KubeConfig],
) -> None:
    server, config = api
    async with kube_of(config, connections=2) as kube:
        version = await kube.patch_status("googleclients", "team", "acme", {"a": 1}, "7")
        assert version == "8"
        with pytest.raises(StatusConflict) as conflict:
            await kube.patch_status("googleclients", "team", "acme", {"a": 2}, "7")
    assert isinstance(conflict.value, KubeError) and conflict.value.status == 409
    assert [json.dumps(p["metadata"]) for p in server.patches] == [
        '{"resourceVersion": "7"}',
        '{"resourceVersion": "7"}',
    ]
    assert server.client["status"] == {"a": 1}


def test_kopfs_pool_has_a_connection_per_watch_besides_its_calls() -> None:
    calls = runner.KOPF_CALL_CONNECTIONS
    assert runner.kopf_connections([]) == 1 + runner.KOPF_OBSERVERS + calls
    watched = [f"ns-{i}" for i in range(20)]
    assert runner.kopf_connections(watched) == 20 + runner.KOPF_OBSERVERS + calls
