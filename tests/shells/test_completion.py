"""The completion scripts load in their shells and complete the commands and `-o`'s values
(bash, zsh, fish: `make shells` installs zsh and fish)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def script(shell: str, folder: Path) -> Path:
    made = subprocess.run(
        [sys.executable, "-m", "google_token_operator", "completion", shell],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    path = folder / f"completion.{shell}"
    path.write_text(made.stdout)
    return path


def shell(name: str, code: str) -> str:
    binary = shutil.which(name)
    if binary is None:
        pytest.fail(f"{name} is not installed: run 'make shells'", pytrace=False)
    ran = subprocess.run([binary, "-c", code], capture_output=True, text=True, timeout=30)
    assert ran.returncode == 0 and not ran.stderr, ran.stdout + ran.stderr
    return ran.stdout


def test_bash_completes_commands_after_kubectl_style_flags_and_output_values(
    tmp_path: Path,
) -> None:
    loaded = script("bash", tmp_path)
    answers = shell(
        "bash",
        f"source {loaded}\n"
        'ask() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _google_token_operator;'
        ' echo "${COMPREPLY[*]}"; }\n'
        "ask google-token-operator -n reviews st\n"
        "ask google-token-operator status -o ''\n"
        "ask google-token-operator refresh --a\n"
        "ask google-token-operator completion ''\n"
        "complete -p google-token-operator\n",
    ).splitlines()
    assert answers == [
        "status",
        "table wide json yaml",
        "--all",
        "bash zsh fish",
        "complete -F _google_token_operator google-token-operator",
    ]


def test_zsh_loads_the_script_and_registers_the_completion(tmp_path: Path) -> None:
    loaded = script("zsh", tmp_path)
    registered = shell("zsh", f"source {loaded}\nprint -r -- ${{_comps[google-token-operator]}}")
    assert registered.strip() == "_bash_complete -F _google_token_operator"


def test_fish_completes_commands_and_output_values(tmp_path: Path) -> None:
    loaded = script("fish", tmp_path)
    commands = shell("fish", f"source {loaded}; complete -C'google-token-operator sta'")
    values = shell("fish", f"source {loaded}; complete -C'google-token-operator status -o '")
    assert [line.split("\t")[0] for line in commands.splitlines()] == ["status"]
    assert sorted(line.split("\t")[0] for line in values.splitlines()) == [
        "json",
        "table",
        "wide",
        "yaml",
    ]
