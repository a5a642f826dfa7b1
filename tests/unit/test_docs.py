"""The docs stay true: the README is a front door, every relative link and #anchor resolves,
and every shell block is marked as an example whose make targets, CLI subcommands and flags,
and repository paths exist."""

from __future__ import annotations

import functools
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted([REPO / "README.md", REPO / "CHANGELOG.md", *(REPO / "docs").rglob("*.md")])
README_MAX_LINES = 150

# A ```sh block no test runs carries this comment on the line before it (a note may follow).
EXAMPLE_MARK = "<!-- example"
FENCE = re.compile(r"^\s*```")
CODE_SPAN = re.compile(r"`[^`]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
REPO_PATH = re.compile(r"^(manifests|charts|crds|hack|tests|docs)/")
CLI = "google-token-operator"


def relative(path: Path) -> str:
    return str(path.relative_to(REPO))


def prose(text: str) -> list[str]:
    """The lines outside fenced blocks, with inline code removed (its brackets are no links)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(CODE_SPAN.sub("", line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@functools.cache
def anchors(path: Path) -> frozenset[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    fenced = False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"#{1,6} (.*)", line)):
            base = slug(heading.group(1))
            seen = counts.get(base, 0)
            counts[base] = seen + 1
            found.add(base if seen == 0 else f"{base}-{seen}")
    return frozenset(found)


def broken_links(doc: Path) -> list[str]:
    broken = []
    for line in prose(doc.read_text()):
        for target in LINK.findall(line):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto: not ours to check offline
            name, _, anchor = target.partition("#")
            path = (doc.parent / name).resolve() if name else doc
            if path.is_dir():
                path = path / "README.md"
            if not path.is_file():
                broken.append(f"{target}: no such file")
            elif anchor and (path.suffix != ".md" or anchor not in anchors(path)):
                broken.append(f"{target}: no heading #{anchor} in {path.name}")
    return broken


def shell_blocks(doc: Path) -> list[tuple[int, bool, list[str]]]:
    """Each ```sh block: its line number, whether it is marked as an example, its commands
    (continuation lines joined, comment lines dropped)."""
    blocks: list[tuple[int, bool, list[str]]] = []
    lines = doc.read_text().splitlines()
    index = 0
    while index < len(lines):
        if lines[index].strip() != "```sh":
            index += 1
            continue
        start = index
        marked = index > 0 and lines[index - 1].strip().startswith(EXAMPLE_MARK)
        commands, pending = [], ""
        index += 1
        while not FENCE.match(lines[index]):
            line = pending + lines[index].strip()
            pending = ""
            if line.endswith("\\"):
                pending = line[:-1] + " "
            elif line and not line.startswith("#"):
                commands.append(line.split(" #", 1)[0])
            index += 1
        blocks.append((start + 1, marked, commands))
        index += 1
    return blocks


@functools.cache
def make_targets() -> frozenset[str]:
    listing = subprocess.run(
        ["make", "-s", "--no-print-directory", "help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    plain = re.sub(r"\x1b\[[0-9;]*m", "", listing)
    return frozenset(line.split()[0] for line in plain.splitlines() if line.strip())


@functools.cache
def cli_help(*subcommand: str) -> str:
    executable = Path(sys.executable).parent / CLI
    return subprocess.run(
        [str(executable), *subcommand, "--help"], capture_output=True, text=True, check=True
    ).stdout


def command_faults(command: str) -> list[str]:
    """What a documented command names that does not exist here."""
    words = shlex.split(command, comments=True)
    paths = [word for word in words if REPO_PATH.match(word) or word.startswith("./")]
    faults = [f"{path}: no such path" for path in paths if not (REPO / path).exists()]
    if words[:1] == ["make"]:
        targets = [word for word in words[1:] if not word.startswith("-") and "=" not in word]
        faults += [f"make {t}: not in make help" for t in targets if t not in make_targets()]
    if words[:1] == [CLI] and len(words) > 1:
        if words[1] not in re.findall(r"^ {4}([a-z][\w-]*)", cli_help(), re.MULTILINE):
            faults.append(f"{CLI} {words[1]}: no such subcommand")
        else:
            usage = cli_help(words[1])
            for flag in (word.split("=", 1)[0] for word in words[2:] if word.startswith("-")):
                if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", usage):
                    faults.append(f"{CLI} {words[1]} {flag}: no such flag")
    return faults


def test_the_readme_is_a_front_door() -> None:
    lines = len((REPO / "README.md").read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines"


def test_the_docs_tree_is_there_and_linked_from_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    for part in ("guides", "reference", "development", "design"):
        assert list((REPO / "docs" / part).glob("*.md")), part
        assert f"docs/{part}/" in readme, part
    assert "CHANGELOG.md" in readme


@pytest.mark.parametrize("doc", DOCS, ids=relative)
def test_every_relative_link_resolves(doc: Path) -> None:
    assert broken_links(doc) == []


@pytest.mark.parametrize("doc", DOCS, ids=relative)
def test_every_shell_block_is_an_example_naming_what_exists(doc: Path) -> None:
    for line, marked, commands in shell_blocks(doc):
        assert marked, f"{relative(doc)}:{line}: a ```sh block no test runs needs {EXAMPLE_MARK}"
        for command in commands:
            assert command_faults(command) == [], f"{relative(doc)}:{line}"


def test_a_broken_link_or_anchor_or_command_is_caught(tmp_path: Path) -> None:
    doc = tmp_path / "page.md"
    doc.write_text("# A page\n[ok](#a-page) [gone](missing.md) [bad](#no-such) `[code](x.md)`\n")
    assert broken_links(doc) == [
        "missing.md: no such file",
        "#no-such: no heading #no-such in page.md",
    ]
    assert command_faults("make unit lint") == []
    assert command_faults("make unit no-such-target") == ["make no-such-target: not in make help"]
    assert command_faults(f"{CLI} status -A -o json") == []
    assert command_faults(f"{CLI} frobnicate") == [f"{CLI} frobnicate: no such subcommand"]
    assert command_faults(f"{CLI} status --no-such-flag") == [
        f"{CLI} status --no-such-flag: no such flag"
    ]
    assert command_faults("kubectl apply -k manifests/overlays/gone") == [
        "manifests/overlays/gone: no such path"
    ]
