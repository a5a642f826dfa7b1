"""Real consents under load: many at once, and during a flood of made-up states.

Google's side is the sandbox (its consent approved by HTTP, as tests/cluster/test_consent_api.py
does); ours is the callback app in front of the operator's consent API, on the real API server.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import secrets as random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from devkit.servers import CallbackServer, SandboxServer
from fixtures.operator import (
    OWNER,
    Cluster,
    OperatorFactory,
    callback_key,
    free_port,
    wait_for,
)
from google_token_operator import GROUP, VERSION

CLIENTS = 300
AT_A_TIME = 8
FLOOD = 1000
PRIVATE = "google-token-operator.dev/role=private"


def consent_urls(cluster: Cluster, count: int) -> dict[str, str]:
    """Each GoogleClient's published consent URL, once all `count` have one."""

    def published() -> dict[str, str] | None:
        listing = cluster.custom.list_namespaced_custom_object(
            GROUP, VERSION, cluster.namespace, "googleclients"
        )
        urls = {
            item["metadata"]["name"]: url
            for item in listing["items"]
            if (url := ((item.get("status") or {}).get("authorization") or {}).get("url"))
        }
        return urls if len(urls) == count else None

    found: dict[str, str] = wait_for(published, 120, interval=1, what=f"{count} consent URLs")
    return found


def google_redirect(url: str) -> dict[str, str]:
    """What the sandbox appends to the redirect URI once the person approved."""
    response = requests.get(url, allow_redirects=False, timeout=30)
    assert response.status_code == 302, response.text
    return dict(parse_qsl(urlsplit(response.headers["Location"]).query))


def consent(callback: CallbackServer, url: str, address: str = "") -> int:
    """One person's consent, approved at the sandbox, landing on the callback; its status."""
    headers = {"X-Forwarded-For": address} if address else {}
    query = google_redirect(url)
    page = requests.get(callback.callback_url, params=query, headers=headers, timeout=60)
    return page.status_code


@dataclasses.dataclass
class Consents:
    """The operator with its consent API; `start` creates GoogleClients, waits for their
    consent URLs and puts the callback in front of the consent API, behind a trusted proxy
    (the tests say which address each request comes from)."""

    cluster: Cluster
    port: int
    folder: Path
    stack: contextlib.ExitStack

    def start(self, count: int) -> tuple[CallbackServer, dict[str, str]]:
        spec = {"credentialsSecretRef": {"name": "acme-oauth"}, "loginHint": OWNER}
        for number in range(count):
            self.cluster.create("googleclients", f"c{number:03d}", spec)
        urls = consent_urls(self.cluster, count)
        key_file = self.folder / "callback-key"
        key_file.write_text(callback_key(self.cluster))
        operator_url = f"http://127.0.0.1:{self.port}"
        callback = CallbackServer(operator_url, key_file, trust_proxy=True)
        return self.stack.enter_context(callback), urls


@pytest.fixture
def consents(
    cluster: Cluster, sandbox: SandboxServer, start_operator: OperatorFactory, tmp_path: Path
) -> Iterator[Consents]:
    port = free_port()
    start_operator("--consent-port", str(port))
    cluster.put_demo_credentials()
    sandbox.state.auto_approve = True
    with contextlib.ExitStack() as stack:
        yield Consents(cluster, port, tmp_path, stack)


def test_300_consents_arriving_8_at_a_time_are_all_stored(
    consents: Consents, cluster: Cluster
) -> None:
    started = time.monotonic()
    callback, urls = consents.start(CLIENTS)
    published = time.monotonic()

    # One address for all (an agency's office): a person's real consents are never limited.
    with concurrent.futures.ThreadPoolExecutor(AT_A_TIME) as pool:
        statuses = list(pool.map(lambda url: consent(callback, url), urls.values()))
    consented = time.monotonic()

    def stored() -> int:
        listing = cluster.core.list_namespaced_secret(cluster.namespace, label_selector=PRIVATE)
        return len(listing.items)

    refused = len([status for status in statuses if status != 200])
    print(
        f"\n{CLIENTS} consents, {AT_A_TIME} at a time: {refused} refused; "
        f"URLs published in {published - started:.1f}s, consents took "
        f"{consented - published:.1f}s, {stored()} private Secrets"
    )
    assert refused == 0, sorted(set(statuses))
    assert stored() == CLIENTS


def test_a_flood_of_made_up_states_cannot_turn_a_real_consent_away(
    consents: Consents, cluster: Cluster
) -> None:
    callback, urls = consents.start(1)
    [url] = urls.values()
    headers = {"Authorization": f"Bearer {callback_key(cluster)}"}
    answered: dict[str, list[int]] = {"callback": [], "consent API": []}
    lock = threading.Lock()

    def garbage(target: str) -> None:
        with requests.Session() as session:
            for _ in range(FLOOD // 4):
                state = random.token_urlsafe(32)
                if target == "callback":  # all from one address
                    answer = session.get(
                        callback.callback_url,
                        params={"state": state, "code": "x"},
                        headers={"X-Forwarded-For": "198.51.100.7"},
                        timeout=30,
                    )
                else:  # past the callback, as from ever new addresses
                    answer = session.post(
                        f"http://127.0.0.1:{consents.port}/consent",
                        json={"state": state, "code": "x"},
                        headers=headers,
                        timeout=30,
                    )
                with lock:
                    answered[target].append(answer.status_code)

    def flooded() -> bool:
        with lock:
            return len(answered["callback"]) >= 100 and answered["consent API"].count(429) >= 50

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        floods = [pool.submit(garbage, target) for target in [*answered] * 4]
        wait_for(flooded, 60, interval=0.05, what="the flood under way")
        started = time.monotonic()
        status = consent(callback, url, address="192.0.2.1")
        took = time.monotonic() - started
        with lock:
            during = sum(map(len, answered.values()))
        for flood in floods:
            flood.result()

    summary: dict[str, Any] = {
        target: {code: codes.count(code) for code in sorted(set(codes))}
        for target, codes in answered.items()
    }
    print(f"\nreal consent during the flood: {status} in {took:.2f}s; flood answers {summary}")
    assert status == 200
    assert took < 5
    assert during < 2 * FLOOD  # it completed while the flood went on
    assert answered["callback"].count(503) >= FLOOD // 2 - 10  # one address, limited
    assert answered["consent API"].count(429) >= FLOOD // 2 - 40  # the bucket still bounds it
    cluster.wait_condition("googleclients", "c000", "Authorized", "True", timeout=30)
