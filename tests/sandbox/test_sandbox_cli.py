"""`google-token-sandbox`: prints the environment, serves, stops on SIGINT."""

from __future__ import annotations

import argparse
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
import requests

from fixtures.sandbox import TIMEOUT, authorization_params, redirect_query
from google_token_operator.settings import ENDPOINT_VARIABLES
from google_token_sandbox import cli
from google_token_sandbox.state import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

CALLBACK = "http://127.0.0.1:18080/oauth2/callback"


def start_sandbox(*options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "google_token_sandbox", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def lines_of(stream: Iterator[str]) -> queue.Queue[str]:
    """The stream's lines, read on a thread so a test can wait for them with a timeout."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


@pytest.fixture
def running_sandbox() -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """A sandbox subprocess with its own client, and the lines it printed once bound."""
    process = start_sandbox(
        "--port", "0", "--auto-approve", "--token-lifetime", "120",
        "--client-id", "cli-client", "--client-secret", "cli-secret", "--redirect-uri", CALLBACK,
    )  # fmt: skip
    assert process.stdout is not None
    output = lines_of(process.stdout)
    printed: list[str] = []
    try:
        while not printed or not printed[-1].startswith("# Sandbox control API"):
            printed.append(output.get(timeout=TIMEOUT).rstrip("\n"))
        yield process, printed
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def exports(printed: list[str]) -> dict[str, str]:
    pairs = [shlex.split(line.removeprefix("export "))[0] for line in printed if line[0] != "#"]
    return dict(pair.split("=", 1) for pair in pairs)


def test_the_cli_prints_the_environment_serves_and_stops_on_sigint(
    running_sandbox: tuple[subprocess.Popen[str], list[str]],
) -> None:
    process, printed = running_sandbox
    env = exports(printed)

    assert set(env) == set(ENDPOINT_VARIABLES)  # every GOOGLE_* setting of the operator
    assert any("cli-client" in line for line in printed if line.startswith("#"))
    assert not [line for line in printed if "cli-secret" in line or DEMO_CLIENT_SECRET in line]

    consent = requests.get(
        env["GOOGLE_OAUTH_AUTH_URI"],
        params=authorization_params(client_id="cli-client", redirect_uri=CALLBACK),
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert consent.headers["Location"].startswith(CALLBACK + "?")
    token = requests.post(
        env["GOOGLE_OAUTH_TOKEN_URI"],
        data={
            "grant_type": "authorization_code",
            "code": redirect_query(consent)["code"],
            "redirect_uri": CALLBACK,
            "client_id": "cli-client",
            "client_secret": "cli-secret",
        },
        timeout=TIMEOUT,
    )
    assert token.json()["expires_in"] == 120

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=5) == 0


def test_the_cli_says_why_it_cannot_bind() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        process = start_sandbox("--port", str(taken.getsockname()[1]))
        _, stderr = process.communicate(timeout=TIMEOUT)

    assert process.returncode == 1
    assert "cannot serve" in stderr


def test_the_options_and_their_defaults() -> None:
    parser = argparse.ArgumentParser()
    cli.configure_parser(parser)

    defaults = parser.parse_args([])
    custom = parser.parse_args(["--redirect-uri", "http://a/cb", "--redirect-uri", "http://b/cb"])

    assert (defaults.host, defaults.port, defaults.token_lifetime) == ("127.0.0.1", 8099, 3599)
    assert (defaults.auto_approve, defaults.client_id) == (False, DEMO_CLIENT_ID)
    assert custom.redirect_uri == ["http://a/cb", "http://b/cb"]
