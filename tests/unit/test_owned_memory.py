"""Only owned data in memory: the managed-Secret watch selects by a label anyone can set, so
what it keeps of a labelled Secret must not grow with the Secret's data unless the Secret is a
live GoogleClient's private Secret."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

from aiohttp import web
from fakes import LOG, FakeKube, operator_with_fakes
from stand_in import serving
from test_passes import NS, PRIVATE_LABELS, authorized, owner_reference, run_pass

from google_token_operator.google_types import ErrorKind, GoogleError
from google_token_operator.kube import Kube, KubeConfig
from google_token_operator.kube.informer import FULL_SECRET_PAGE_SIZE, PAGE_SIZE, Informer
from google_token_operator.reconcile.client_pass import ClientMemory
from google_token_operator.reconcile.deletion import delete_client

BIG = "x" * 100_000


def count_gets(kube: FakeKube) -> list[tuple[str, str]]:
    """The GETs of the private Secret the passes make from now on."""
    gets: list[tuple[str, str]] = []
    get_secret = kube.get_secret

    async def counted(namespace: str, name: str) -> dict[str, Any] | None:
        if name == "acme-google-oauth":
            gets.append((namespace, name))
        return await get_secret(namespace, name)

    kube.get_secret = counted  # type: ignore[method-assign]
    return gets


async def test_the_watch_keeps_no_data_of_a_labelled_secret_that_is_no_live_clients() -> None:
    op, kube, _, _, _ = operator_with_fakes()
    body = authorized(kube)
    owned_elsewhere = {"ownerReferences": [owner_reference(body)]}
    forged = {
        "no-owner": {},
        "acme-google-oauth-copy": owned_elsewhere,  # the client's uid, another name
        "other-google-oauth": owned_elsewhere,  # named for a client that does not exist
    }
    for name, meta in forged.items():
        kube.put_secret(NS, name, {"refresh_token": BIG}, labels=PRIVATE_LABELS, **meta)
    kube.put_secret(  # at the client's private name, owned by nobody
        "gto", "acme-google-oauth", {"refresh_token": BIG}, labels=PRIVATE_LABELS
    )

    for key in [*((NS, name) for name in forged), ("gto", "acme-google-oauth")]:
        view = op.cluster.managed.get(key)
        assert view is not None and view.data_keys == {"refresh_token"}
        assert view.private_data is None, key
    owned = op.cluster.managed.get((NS, "acme-google-oauth"))
    assert owned is not None and owned.private_data is not None
    assert set(owned.private_data) == {"refresh_token", "client_id", "scopes"}

    # A version seen while the client is unknown keeps no data.
    seen_before_its_client(kube)
    owned = op.cluster.managed.get((NS, "acme-google-oauth"))
    assert owned is not None and owned.private_data is None


def seen_before_its_client(kube: FakeKube) -> None:
    """Show the private Secret again while the GoogleClient is unknown (as when the Secret's
    watch is ahead of the GoogleClients'): the watch keeps no data of it."""
    body = kube.delete_resource("googleclients", NS, "acme")
    secret = kube.secrets[(NS, "acme-google-oauth")]
    kube._show_secret("MODIFIED", kube._stamp(secret))
    kube.put_resource("googleclients", body)


async def test_a_private_secret_seen_before_its_client_is_read_once_and_refreshed() -> None:
    op, kube, google, clock, _ = operator_with_fakes()
    authorized(kube)
    seen_before_its_client(kube)
    view = op.cluster.managed.get((NS, "acme-google-oauth"))
    assert view is not None and view.private_data is None
    gets = count_gets(kube)
    memory = ClientMemory(status={})

    await run_pass(op, kube, memory)

    assert gets == [(NS, "acme-google-oauth")]
    assert google.calls["refresh"] == 1
    private = kube.plain(NS, "acme-google-oauth") or {}
    assert private["refresh_token"] == "1//r"
    assert private["access_token"] == (kube.plain(NS, "acme-google-token") or {})["access_token"]
    # Its own write was seen with the client known: the watch keeps the data again.
    view = op.cluster.managed.get((NS, "acme-google-oauth"))
    assert view is not None and view.private_data is not None

    # An hour on, the next refresh reads nothing more.
    clock.advance(hours=1)
    await run_pass(op, kube, memory)
    assert google.calls["refresh"] == 2
    assert gets == [(NS, "acme-google-oauth")]


async def test_a_private_secret_without_data_in_the_watch_is_read_once_per_version() -> None:
    op, kube, google, _, _ = operator_with_fakes()
    authorized(kube)
    seen_before_its_client(kube)
    google.refresh_errors.append(GoogleError(ErrorKind.RETRYABLE, 503, "server_error", ""))
    key = (NS, "acme-google-oauth")
    gets = count_gets(kube)
    memory = ClientMemory(status={})

    await run_pass(op, kube, memory)  # the refresh fails: nothing is written, back-off
    await run_pass(op, kube, memory)
    assert gets == [key]
    assert google.calls["refresh"] == 1

    seen_before_its_client(kube)  # a new version, still without data in the watch
    await run_pass(op, kube, memory)
    assert gets == [key, key]


async def test_deleting_a_client_revokes_the_grant_of_a_private_secret_read_by_get() -> None:
    op, kube, google, _, _ = operator_with_fakes()
    authorized(kube, revokeOnDelete=True)
    seen_before_its_client(kube)
    body = kube.delete_resource("googleclients", NS, "acme")

    await delete_client(op, body, LOG)

    assert google.revoked == ["1//r"]
    assert kube.plain(NS, "acme-google-oauth") is None


class PagedApi:
    """A list endpoint that answers in pages of the asked `limit`, recording each ask."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.asked: list[dict[str, str]] = []

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        params = kwargs["params"]
        self.asked.append(params)
        start = int(params.get("continue") or 0)
        end = start + int(params["limit"])
        more = {"continue": str(end)} if end < len(self.items) else {}
        return {"metadata": {"resourceVersion": "7", **more}, "items": self.items[start:end]}


async def test_the_full_secret_list_takes_few_per_page_and_keeps_every_view() -> None:
    op, _, _, _, _ = operator_with_fakes()
    items = [
        {"metadata": {"name": f"s{n}", "namespace": NS, "resourceVersion": str(n),
                      "labels": PRIVATE_LABELS}, "data": {"refresh_token": BIG}}
        for n in range(25)
    ]  # fmt: skip
    api = PagedApi(items)
    managed = op.cluster.managed
    informer = Informer(api, "managed", ["/p"], managed.reduce, page_size=managed.page_size)  # type: ignore[arg-type]

    version = await asyncio.wait_for(informer._list("/p"), 5)

    assert version == "7" and len(informer) == 25
    assert [ask["limit"] for ask in api.asked] == [str(FULL_SECRET_PAGE_SIZE)] * 3
    assert all(view.private_data is None for _, view in informer.items())
    assert op.cluster.secret_meta.page_size == PAGE_SIZE  # metadata-only lists keep big pages


PAGES_SCRIPT = """
import base64, json, os
from google_token_operator.allocator import return_large_blocks

def rss():
    status = open("/proc/self/status").read()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024

assert return_large_blocks()  # without it: +21.5 MB measured
value = base64.b64encode(os.urandom(1_000_000)).decode()
items = [{"metadata": {"name": f"s{n}"}, "data": {"refresh_token": value}} for n in range(10)]
page = json.dumps({"items": items}).encode()
del value, items
before, kept = rss(), {}
for number in range(30):  # 300 Secrets of 1 MiB, 10 a page, each reduced to a few bytes
    for item in json.loads(page)["items"]:
        kept[f"{item['metadata']['name']}-{number}"] = len(item["data"]["refresh_token"])
print(rss() - before)
"""


def test_pages_of_large_secrets_leave_no_resident_memory_behind() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PAGES_SCRIPT], capture_output=True, text=True, check=True
    )
    growth = float(result.stdout)
    print(f"RSS growth after 300 Secrets of 1 MiB read 10 a page: {growth:.1f} MB")
    assert growth < 5


async def test_a_watch_takes_in_an_event_of_a_secret_holding_a_full_mebibyte() -> None:
    """aiohttp refuses lines over 512 KiB unless told otherwise: such an event ended the
    managed-Secret watch for good (any tenant can label a 1 MiB Secret)."""
    secret = {"metadata": {"name": "big", "namespace": NS}, "data": {"k": "x" * 1_500_000}}
    events = [{"type": "ADDED", "object": secret}, {"type": "BOOKMARK", "object": {}}]

    async def watch(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for event in events:
            await response.write(json.dumps(event).encode() + b"\n")
        return response

    app = web.Application()
    app.router.add_get("/api/v1/secrets", watch)
    async with serving(app) as url:
        kube = Kube(KubeConfig(server=url, ssl_context=None))
        try:
            seen = [event async for event in kube.watch("/api/v1/secrets", {})]
        finally:
            await kube.close()
    assert seen == events
