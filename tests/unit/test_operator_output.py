"""What the operator writes: its banner, its line format, kopf's routine lines kept down, and
one clear line (exit code 2, no traceback) when it cannot start as configured."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from google_token_operator import logs
from google_token_operator.settings import GoogleEndpoints


@pytest.fixture
def root_logging() -> Iterator[None]:
    """configure() replaces the root handler: put it back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_the_banner_says_version_namespaces_ports_google_and_leader_election() -> None:
    google = GoogleEndpoints(token_uri="http://127.0.0.1:9/token")
    ports = {"consent": 8443, "metrics": 0, "liveness": 8081}

    text = "\n".join(logs.banner("1.2.3", ["a", "b"], "gto", ports, google, True))

    assert "google-token-operator 1.2.3" in text
    assert "Watching: a, b; operator namespace: gto" in text
    assert "Ports: consent 8443, metrics off, liveness 8081" in text
    assert "token http://127.0.0.1:9/token" in text
    assert "auth https://accounts.google.com/o/oauth2/v2/auth" in text
    assert "Leader election: on" in text
    everywhere = logs.banner("1.2.3", [], "gto", ports, google, False)
    assert "Watching: all namespaces; operator namespace: gto" in everywhere
    assert "Leader election: off" in everywhere


def _line(message: str, log_format: str, name: str = "kopf.objects") -> str:
    (handler,) = logging.getLogger().handlers[-1:]
    record = logging.LogRecord(name, logging.WARNING, "", 0, message, (), None)
    record.created = 1_700_000_000.0  # 2023-11-14T22:13:20Z
    record.k8s_ref = {"namespace": "team", "name": "downtown"}
    return handler.format(record)


@pytest.mark.parametrize("log_format", ["plain", "full"])
def test_text_lines_start_with_a_utc_timestamp_and_carry_the_level_and_the_object(
    log_format: str, root_logging: None
) -> None:
    logs.configure(False, log_format)

    line = _line("location check failed", log_format)

    assert line.startswith("2023-11-14T22:13:20Z ")
    assert "WARNING" in line
    assert line.endswith("[team/downtown] location check failed")


@pytest.mark.parametrize("log_format", ["plain", "full", "json"])
def test_a_line_about_a_branch_from_its_clients_logger_names_the_branch(
    log_format: str, root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure(False, log_format)
    client = logs.Tagged(logging.getLogger("kopf.objects"), "GoogleClient", "team", "acme")

    logs.tagged(client, {"metadata": {"namespace": "team", "name": "downtown"}}).info("Ready")

    (line,) = capsys.readouterr().err.splitlines()
    if log_format == "json":
        assert json.loads(line)["object"] == {
            "kind": "Branch",
            "namespace": "team",
            "name": "downtown",
        }
    else:
        assert line.endswith(" [team/downtown] Ready")


@pytest.mark.parametrize("verbose", [False, True])
def test_kopfs_per_event_success_lines_are_debug(
    verbose: bool, root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure(verbose, "plain")
    kopf_objects = logging.getLogger("kopf.objects")

    kopf_objects.info("Handler 'googleclient' succeeded.")
    logging.getLogger("kopf.activities").info("Activity 'login' succeeded.")
    kopf_objects.info("Creation is processed: 1 succeeded; 0 failed.")
    kopf_objects.info("Resuming is processed: 0 succeeded; 1 failed.")
    kopf_objects.warning("Handler 'googleclient' failed temporarily: boom")

    lines = capsys.readouterr().err.splitlines()
    routine = [line for line in lines if " 0 failed." in line or "' succeeded." in line]
    if verbose:
        assert len(routine) == 3 and all(" DEBUG " in line for line in routine)
    else:
        assert routine == []
    assert any(" INFO " in line and "1 failed." in line for line in lines)
    assert any(" WARNING " in line and "failed temporarily" in line for line in lines)


def _run_operator(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`google-token-operator run` as a person starts it, its output piped."""
    return subprocess.run(
        [sys.executable, "-m", "google_token_operator", "run", "-n", "team", *args],
        env={**os.environ, "OPERATOR_NAMESPACE": "gto", **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )


def _kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
        "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
    )
    return path


def _refused(result: subprocess.CompletedProcess[str]) -> str:
    """The one line the operator said; it must have said only that."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "\x1b[" not in result.stdout + result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "cannot start" in line]
    return line


def test_a_missing_kubeconfig_is_one_line_naming_it_exit_2(tmp_path: Path) -> None:
    result = _run_operator(tmp_path, KUBECONFIG=str(tmp_path / "nope"))

    line = _refused(result)
    assert "KUBECONFIG" in line and str(tmp_path / "nope") in line


def test_a_bad_setting_is_one_line_naming_it_exit_2(tmp_path: Path) -> None:
    result = _run_operator(tmp_path, KUBECONFIG=str(_kubeconfig(tmp_path)), LOG_FORMAT="xml")

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "LOG_FORMAT" in result.stderr.strip()
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("option", ["--metrics-port", "--consent-port", "--liveness-port"])
def test_a_busy_port_is_one_line_naming_it_exit_2(tmp_path: Path, option: str) -> None:
    ports = {"--metrics-port": "0", "--consent-port": "0", "--liveness-port": "0"}
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))  # noqa: S104
        taken.listen()
        ports[option] = str(taken.getsockname()[1])
        flags = [part for pair in ports.items() for part in pair]
        result = _run_operator(tmp_path, *flags, KUBECONFIG=str(_kubeconfig(tmp_path)))

    line = _refused(result)
    assert f"port {ports[option]} ({option})" in line
