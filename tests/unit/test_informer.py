"""The informer against a stand-in API server: paging, relists, bookmarks, dropped watches."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest
from aiohttp import web
from stand_in import serving
from test_kube_connections import until

from google_token_operator.kube import Kube, KubeConfig, informer
from google_token_operator.kube.informer import FULL_SECRET_PAGE_SIZE, PAGE_SIZE, Informer
from google_token_operator.naming import Key

PATH = "/api/v1/secrets"
DROP: dict[str, Any] = {}  # in a watch script: the connection is cut here, mid-stream


def secret(name: str, version: int) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": str(version)}}


def event(kind: str, name: str, version: int) -> dict[str, Any]:
    return {"type": kind, "object": secret(name, version)}


Listing = tuple[list[dict[str, Any]], int]  # the objects and the list's resourceVersion


class Api:
    """Lists in pages (the continue token is the offset): the first list sees the first
    listing, each later one the next (the cluster as it is then). Each watch request is
    answered with the next script of events; with none left a watch stays open, silent."""

    def __init__(self, *listings: Listing) -> None:
        self.listings = listings
        self.lists: list[dict[str, str]] = []
        self.watches: list[dict[str, str]] = []
        self.scripts: list[list[dict[str, Any]]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(PATH, self.answer)
        return app

    async def answer(self, request: web.Request) -> web.StreamResponse:
        query = {**request.query, "accept": request.headers["Accept"]}
        if request.query.get("watch") == "true":
            self.watches.append(query)
            return await self.watch(request)
        self.lists.append(query)
        fresh = sum("continue" not in done for done in self.lists)
        objects, version = self.listings[min(fresh, len(self.listings)) - 1]
        start, limit = int(request.query.get("continue") or 0), int(request.query["limit"])
        more = start + limit < len(objects)
        return web.json_response(
            {
                "metadata": {
                    "resourceVersion": str(version),
                    "continue": str(start + limit) if more else "",
                },
                "items": objects[start : start + limit],
            }
        )

    async def watch(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        if not self.scripts:
            await asyncio.Event().wait()
        for line in self.scripts.pop(0):
            if line is DROP:
                assert request.transport is not None
                request.transport.close()
                return response
            await response.write(json.dumps(line).encode() + b"\n")
        return response


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(informer, "RETRY_BASE", dt.timedelta(milliseconds=10))


Changes = list[tuple[Key, str | None, str | None]]


async def running(api: Api, watches: int, **options: Any) -> tuple[Informer[str], Changes]:
    """An informer of `api` run until it has made `watches` watch requests, then stopped."""
    changes: Changes = []
    async with serving(api.app()) as url:
        kube = Kube(KubeConfig(server=url, ssl_context=None))
        watched = Informer(
            kube,
            "Secrets",
            [PATH],
            lambda body: str(body["metadata"]["resourceVersion"]),
            on_change=lambda key, old, new: changes.append((key, old, new)),
            **options,
        )
        task = asyncio.create_task(watched.run())
        try:
            await until(lambda: len(api.watches) >= watches)
        finally:
            task.cancel()
            await kube.close()
    return watched, changes


def named(count: int) -> list[dict[str, Any]]:
    return [secret(f"s{index:02}", index + 1) for index in range(count)]


async def test_full_secrets_are_listed_a_few_a_page_following_the_continue_tokens() -> None:
    api = Api((named(2 * FULL_SECRET_PAGE_SIZE + 3), 100))
    watched, changes = await running(api, 1, page_size=FULL_SECRET_PAGE_SIZE)
    assert [query["limit"] for query in api.lists] == [str(FULL_SECRET_PAGE_SIZE)] * 3
    assert [query.get("continue") for query in api.lists] == [None, "10", "20"]
    assert len(watched) == 23 and len(changes) == 23 and watched.synced.is_set()
    assert watched.get(("ns", "s22")) == "23"
    assert api.watches[0]["resourceVersion"] == "100"


async def test_a_metadata_list_asks_for_500_a_page_as_partial_object_metadata() -> None:
    api = Api((named(3), 7))
    watched, _ = await running(api, 1, metadata_only=True, label_selector="a=b")
    assert [query["limit"] for query in api.lists] == [str(PAGE_SIZE)] == ["500"]
    assert api.lists[0]["labelSelector"] == api.watches[0]["labelSelector"] == "a=b"
    assert "as=PartialObjectMetadataList" in api.lists[0]["accept"]
    assert "as=PartialObjectMetadata;" in api.watches[0]["accept"]
    assert len(watched) == 3


async def test_a_gone_watch_relists_and_objects_deleted_meanwhile_are_dropped_and_told() -> None:
    later = [secret("s01", 20), secret("s02", 3)]  # s00 deleted, s01 changed while gone
    api = Api((named(3), 10), (later, 30))
    api.scripts = [[{"type": "ERROR", "object": {"code": 410, "reason": "Expired"}}]]
    watched, changes = await running(api, 2)
    assert len(api.lists) == 2
    assert [query["resourceVersion"] for query in api.watches] == ["10", "30"]
    assert ("ns", "s00") not in watched and len(watched) == 2
    assert changes[3:] == [(("ns", "s01"), "2", "20"), (("ns", "s00"), "1", None)]


async def test_a_bookmark_advances_the_version_the_next_watch_starts_from() -> None:
    api = Api((named(1), 10))
    api.scripts = [[{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "55"}}}]]
    watched, changes = await running(api, 2)
    assert [query["resourceVersion"] for query in api.watches] == ["10", "55"]
    assert all(query["allowWatchBookmarks"] == "true" for query in api.watches)
    assert len(api.lists) == 1 and len(changes) == 1 and len(watched) == 1


async def test_a_dropped_watch_resumes_from_the_last_event_losing_and_repeating_none() -> None:
    api = Api((named(2), 10))
    api.scripts = [
        [event("ADDED", "s09", 11), event("MODIFIED", "s00", 12), DROP],
        [event("DELETED", "s01", 13), event("MODIFIED", "s09", 14)],
    ]
    watched, changes = await running(api, 3)
    assert [query["resourceVersion"] for query in api.watches] == ["10", "12", "14"]
    assert len(api.lists) == 1
    assert changes[2:] == [
        (("ns", "s09"), None, "11"),
        (("ns", "s00"), "1", "12"),
        (("ns", "s01"), "2", None),
        (("ns", "s09"), "11", "14"),
    ]
    assert dict(watched.items()) == {("ns", "s00"): "12", ("ns", "s09"): "14"}
