"""The consumer snippet of docs/guides/consuming-tokens.md, reading a Branch Secret laid out
as the kubelet lays out a volume, calls the sandbox reviews API across a token refresh."""

from __future__ import annotations

import base64
import datetime as dt
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import google.auth._helpers
import google.auth.transport.requests
import pytest

from devkit.servers import SandboxServer
from fixtures.operator import Cluster, OperatorFactory, authorized_client, branch_spec, wait_for
from google_token_sandbox.demo_data import OWNER_LOCATION_IDS

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guides" / "consuming-tokens.md"
MARKER = "<!-- consumer-snippet"


def guide_snippet() -> str:
    text = GUIDE.read_text()
    after = text[text.index(MARKER) :]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


class FakeKubelet:
    """Projects a Secret into a directory the way the kubelet does: each key a file behind a
    `..data` symlink that is swapped atomically when the Secret changes."""

    def __init__(self, cluster: Cluster, secret: str, target: Path) -> None:
        self.cluster, self.secret, self.target = cluster, secret, target
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._version = ""

    def sync(self) -> None:
        body = self.cluster.core.read_namespaced_secret(self.secret, self.cluster.namespace)
        if body.metadata.resource_version == self._version:
            return
        stamp = self.target / f"..{time.time_ns()}"
        stamp.mkdir()
        for key, value in (body.data or {}).items():
            (stamp / key).write_bytes(base64.b64decode(value))
            link = self.target / key
            if not link.is_symlink():
                link.symlink_to(Path("..data") / key)
        swap = self.target / "..data_tmp"
        swap.symlink_to(stamp.name)
        os.replace(swap, self.target / "..data")
        self._version = body.metadata.resource_version

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            self.sync()

    def __enter__(self) -> FakeKubelet:
        self.sync()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def short_google_auth_threshold(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # google-auth treats a token as expired 3m45s early; our test tokens live 30 s, so the
    # threshold is scaled down with them (the operator promises 10 min on real 1 h tokens).
    monkeypatch.setattr(google.auth._helpers, "REFRESH_THRESHOLD", dt.timedelta(seconds=3))
    yield


def test_the_guide_snippet_reads_the_mounted_secret_across_a_refresh(
    cluster: Cluster,
    sandbox: SandboxServer,
    start_operator: OperatorFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    short_google_auth_threshold: None,
) -> None:
    sandbox.state.token_lifetime = 30
    start_operator()
    authorized_client(cluster, sandbox)
    cluster.create("branches", "downtown", branch_spec(OWNER_LOCATION_IDS[0]))
    cluster.wait_condition("branches", "downtown", "Ready", "True", timeout=20)

    volume = tmp_path / "google-token"
    volume.mkdir()
    monkeypatch.setenv("GOOGLE_TOKEN_FILE", str(volume / "token.json"))
    namespace: dict[str, Any] = {}
    exec(compile(guide_snippet(), str(GUIDE.name), "exec"), namespace)  # noqa: S102
    session = google.auth.transport.requests.AuthorizedSession(namespace["credentials"])

    with FakeKubelet(cluster, "downtown-google-token", volume):
        url = f"{sandbox.url}/v4/accounts/1234567890/locations/{OWNER_LOCATION_IDS[0]}/reviews"
        first = session.get(url, timeout=10)
        assert first.status_code == 200, first.text
        first_token = namespace["credentials"].token
        wait_for(
            lambda: (
                session.get(url, timeout=10).ok and namespace["credentials"].token != first_token
            ),
            60,
            interval=1,
            what="a call made with the refreshed token",
        )
    assert sandbox.state.counts["token.refresh_token"] >= 2
    assert sandbox.state.counts["reviews.list"] >= 2
