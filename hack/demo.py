"""`make demo`: the whole product on this machine, on an embedded default.

Starts a real control plane (etcd + kube-apiserver) and the sandbox Google, applies the CRDs
and a demo GoogleClient with two Branches, runs the operator and the callback as local
processes, gets consent (auto-approved when there is no terminal, else you click Allow in
your browser), shows everything turning Ready, waits for one token refresh, reads a review
with a Branch's token, and stops everything on Ctrl-C or at the end.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import requests

from devkit import ControlPlane
from devkit.servers import SandboxServer
from google_token_operator.consent_state.contract import CALLBACK_PATH, KEY_FIELD, KEY_SECRET
from google_token_sandbox.demo_data import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_NAME,
    DEMO_CLIENT_SECRET,
    OWNER_ACCOUNT_ID,
    OWNER_EMAIL,
    OWNER_LOCATION_IDS,
)
from google_token_sandbox.state import SandboxState

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "demo"
# The consent API's key in a file: in a cluster it is mounted into the callback pod.
KEY_FILE = "consent-api-key"
# Short tokens so a refresh happens while you watch (refreshed ~10 s before expiry).
TOKEN_LIFETIME = 30
T = TypeVar("T")


def demo_objects() -> list[dict[str, Any]]:
    """The embedded default: one OAuth client (the sandbox's demo client) and two Branches."""
    api = "google-token-operator.dev/v1"
    branches = [
        {
            "apiVersion": api,
            "kind": "Branch",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "clientRef": {"name": "acme"},
                "accountId": OWNER_ACCOUNT_ID,
                "locationId": location,
                "displayName": name.title(),
            },
        }
        for name, location in zip(("downtown", "airport"), OWNER_LOCATION_IDS, strict=False)
    ]
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "acme-oauth", "namespace": NAMESPACE},
            "stringData": {"client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET},
        },
        {
            "apiVersion": api,
            "kind": "GoogleClient",
            "metadata": {"name": "acme", "namespace": NAMESPACE},
            "spec": {"credentialsSecretRef": {"name": "acme-oauth"}, "loginHint": OWNER_EMAIL},
        },
        *branches,
    ]


def step(message: str) -> None:
    """A heading; bold on a terminal only, so a piped log holds no escape codes."""
    bold, plain = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")
    print(f"\n{bold}==> {message}{plain}", flush=True)


def info(message: str) -> None:
    print(f"    {message}", flush=True)


def wait(check: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.3)
    raise SystemExit(f"demo: timed out after {timeout:.0f}s waiting for {what}")


def branch_ready(demo: Demo, name: str) -> bool:
    return demo.condition("branches", name, "Ready").get("status") == "True"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass(frozen=True)
class Ports:
    callback: int
    consent: int

    @property
    def callback_base(self) -> str:
        return f"http://127.0.0.1:{self.callback}"

    @property
    def callback_url(self) -> str:
        return f"{self.callback_base}{CALLBACK_PATH}"


class Demo:
    def __init__(
        self, plane: ControlPlane, sandbox: SandboxServer, workdir: Path, ports: Ports
    ) -> None:
        self.plane = plane
        self.sandbox = sandbox
        self.workdir = workdir
        self.ports = ports
        self.processes: list[subprocess.Popen[bytes]] = []

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return self.plane.kubectl(*args, input=stdin).stdout

    def resource(self, plural: str, name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
        text = self.kubectl("get", plural, name, "-n", namespace, "-o", "json")
        result: dict[str, Any] = json.loads(text)
        return result

    def secret_field(self, name: str, key: str, namespace: str = NAMESPACE) -> str | None:
        """One decoded value of a Secret; None while it is not there."""
        result = self.plane.kubectl(
            "get", "secret", name, "-n", namespace, "-o", f"jsonpath={{.data.{key}}}", check=False
        )
        return base64.b64decode(result.stdout).decode() if result.returncode == 0 else None

    def condition(self, plural: str, name: str, kind: str) -> dict[str, Any]:
        for item in self.resource(plural, name).get("status", {}).get("conditions", []):
            if item["type"] == kind:
                return dict(item)
        return {}

    def spawn(self, name: str, *args: str, env: dict[str, str]) -> Path:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "google_token_operator", *args],
                    env={**os.environ, **env},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        return log

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run(args: argparse.Namespace) -> None:
    started = time.monotonic()
    interactive = sys.stdin.isatty() and not args.auto

    def demo_google(state: SandboxState, callback_url: str) -> None:
        state.token_lifetime = TOKEN_LIFETIME
        state.auto_approve = not interactive
        state.register_client(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, [callback_url], DEMO_CLIENT_NAME)

    with local_stack(demo_google) as demo:
        info(f"tokens live {TOKEN_LIFETIME}s")
        walk_through(demo, interactive)
    step(f"Done in {time.monotonic() - started:.0f}s. Nothing is left running.")


@contextlib.contextmanager
def local_stack(configure: Callable[[SandboxState, str], None]) -> Iterator[Demo]:
    """A control plane and the sandbox Google (set up by `configure` for the callback URL);
    whatever runs in it stops when the block ends, on Ctrl-C too."""
    with tempfile.TemporaryDirectory(prefix="gto-demo-") as scratch:
        step("Starting a local control plane: real etcd + kube-apiserver")
        with ControlPlane() as plane:
            info(f"API server {plane.server}; kubeconfig {plane.kubeconfig}")
            ports = Ports(free_port(), free_port())
            state = SandboxState()
            configure(state, ports.callback_url)
            step("Starting the sandbox Google (it stands in for accounts.google.com and friends)")
            with SandboxServer(state) as sandbox:
                info(f"sandbox Google at {sandbox.url}")
                demo = Demo(plane, sandbox, Path(scratch), ports)
                try:
                    yield demo
                finally:
                    step("Stopping the operator, the callback, the sandbox and the control plane")
                    demo.stop()


def apply_crds(demo: Demo) -> None:
    demo.kubectl("apply", "-f", str(REPO / "crds"))
    demo.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/googleclients.google-token-operator.dev",
        "crd/branches.google-token-operator.dev",
    )


def start_operator_and_callback(
    demo: Demo, operator_namespace: str, *scope: str
) -> tuple[Path, Path]:
    """The operator (watching `scope`) and the callback as local processes: their logs."""
    env = {
        **demo.sandbox.env,
        "KUBECONFIG": str(demo.plane.kubeconfig),
        "OPERATOR_NAMESPACE": operator_namespace,
        "CALLBACK_URL": demo.ports.callback_url,
        "CALLBACK_IDLE": "5s",
        "PYTHONUNBUFFERED": "1",
    }
    operator_log = demo.spawn(
        "operator",
        "run",
        *scope,
        "--consent-port",
        str(demo.ports.consent),
        "--metrics-port",
        "0",
        "--liveness-port",
        "0",
        env=env,
    )
    callback_log = demo.spawn(
        "callback",
        "callback",
        "--host",
        "127.0.0.1",
        "--port",
        str(demo.ports.callback),
        "--operator-url",
        f"http://127.0.0.1:{demo.ports.consent}",
        "--api-key-file",
        str(demo.workdir / KEY_FILE),
        env=env,
    )
    return operator_log, callback_log


def hand_key_to_callback(demo: Demo, operator_namespace: str) -> None:
    """In a cluster the key is mounted into the callback pod; here it is copied into a file,
    once the operator made it."""
    key = wait(
        lambda: demo.secret_field(KEY_SECRET, KEY_FIELD, operator_namespace),
        30,
        "the callback's key",
    )
    (demo.workdir / KEY_FILE).write_text(key)


def walk_through(demo: Demo, interactive: bool) -> None:
    step("Applying the CRDs and the demo objects (a GoogleClient and two Branches)")
    apply_crds(demo)
    manifest = "\n---\n".join(json.dumps(item) for item in demo_objects())
    print(demo.kubectl("apply", "-f", "-", stdin=manifest), end="")

    step("Starting the operator and the callback as local processes")
    operator_log, _ = start_operator_and_callback(demo, NAMESPACE, "-n", NAMESPACE)
    info(f"operator log: {operator_log}")

    step("Waiting for the operator to publish a consent URL in the GoogleClient's status")
    url = consent_url(demo, "acme", NAMESPACE)
    hand_key_to_callback(demo, NAMESPACE)
    print(demo.kubectl("get", "googletokens", "-n", NAMESPACE), end="")
    info("Consent URL (status.authorization.url):")
    print(f"\n    {url}\n", flush=True)
    if interactive:
        info("Open it in your browser and click Allow (nothing is opened for you).")
    else:
        info("No terminal: approving through the sandbox as a browser would.")
        wait(lambda: _reachable(f"{demo.ports.callback_base}/healthz"), 30, "callback")
        page = requests.get(url, timeout=30)  # sandbox -> callback -> operator
        title = page.text.split("<h1>")[1].split("</h1>")[0] if "<h1>" in page.text else ""
        info(f"callback page: HTTP {page.status_code} {title}")

    step("Waiting for the GoogleClient and both Branches to turn Ready")
    wait(
        lambda: demo.condition("googleclients", "acme", "Authorized").get("status") == "True",
        600 if interactive else 60,
        "consent",
    )
    for name in ("downtown", "airport"):
        wait(functools.partial(branch_ready, demo, name), 60, f"Branch {name}")
    print(demo.kubectl("get", "googletokens", "-n", NAMESPACE), end="")

    step("Waiting for a refresh (tokens are short in the demo)")
    before = demo.resource("googleclients", "acme")["status"]
    info(
        f"current token expires at {before['expiresAt']}; next refresh at "
        f"{before.get('nextRefreshTime')}"
    )

    def refreshed() -> dict[str, Any] | None:
        status: dict[str, Any] = demo.resource("googleclients", "acme")["status"]
        return status if status.get("lastRefreshTime") != before["lastRefreshTime"] else None

    after = wait(refreshed, TOKEN_LIFETIME + 30, "a refresh")
    info(f"refreshed at {after['lastRefreshTime']}; new token expires at {after['expiresAt']}")

    step("Reading reviews the way a review-fetcher pod would: with the Branch's Secret")
    secret = json.loads(
        demo.kubectl("get", "secret", "downtown-google-token", "-n", NAMESPACE, "-o", "json")
    )
    token = json.loads(base64.b64decode(secret["data"]["token.json"]))
    info(f"Secret {NAMESPACE}/downtown-google-token keys: {', '.join(sorted(secret['data']))}")
    reviews = requests.get(
        f"{demo.sandbox.url}/v4/{token['location_name']}/reviews",
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=10,
    ).json()
    info(
        f"{token['location_name']}: {reviews.get('totalReviewCount')} reviews, average "
        f"{reviews.get('averageRating')}"
    )
    info(
        "Pods mount that Secret as a volume and re-read token.json "
        "(see docs/guides/consuming-tokens.md)."
    )
    if interactive:
        info(
            f"Everything keeps running: KUBECONFIG={demo.plane.kubeconfig} kubectl get "
            f"googletokens -n {NAMESPACE}"
        )
        info("Press Ctrl-C to stop.")
        try:
            signal.pause()
        except KeyboardInterrupt:
            return  # the expected way to end an interactive demo


def consent_url(demo: Demo, name: str, namespace: str) -> str:
    """The consent URL the operator publishes in the GoogleClient's status."""
    url: str = wait(
        lambda: (
            demo.resource("googleclients", name, namespace)
            .get("status", {})
            .get("authorization", {})
            .get("url")
        ),
        60,
        "the consent URL",
    )
    return url


def _reachable(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.ConnectionError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--auto", action="store_true", help="approve consent without a browser")
    args = parser.parse_args()
    # Ctrl-C and SIGTERM both unwind through the `finally`/`with` blocks above.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        run(args)
    except KeyboardInterrupt:
        print("\nInterrupted; everything was stopped.", flush=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
