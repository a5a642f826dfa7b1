"""Write charts/google-token-operator/README.md from the chart's values.yaml (`make chart-readme`).

values.yaml is the reference: the comment block right above a key is its description. A mapping
is listed key by key when one of its keys has a description of its own, else as one value
(resources, securityContext…). tests/unit/test_chart_readme.py fails when README.md is not what
this writes. Why not helm-docs: docs/design/2026-12-06-chart-readme-generator.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import json
import re
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent.parent / "charts" / "google-token-operator"
README = CHART / "README.md"
# Two-space indentation, as the chart's values.yaml is written.
KEY = re.compile(r"^(?P<indent>(?:  )*)(?P<key>[A-Za-z][A-Za-z0-9_]*):(?:\s|$)")


@dataclasses.dataclass(frozen=True)
class Entry:
    path: tuple[str, ...]
    description: str


def entries(values_text: str) -> list[Entry]:
    """Every key of values.yaml (outside list items) in file order, with its comment block."""
    found: list[Entry] = []
    comment: list[str] = []
    path: list[str] = []
    for line in values_text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped.removeprefix("#").removeprefix(" ").rstrip())
            continue
        match = KEY.match(line)
        if match:
            depth = len(match["indent"]) // 2
            path = [*path[:depth], match["key"]]
            found.append(Entry(tuple(path), description(comment)))
        # A blank line or any other line ends a comment block: it belongs to no key.
        comment = []
    return found


def description(comment: list[str]) -> str:
    """One table cell: prose lines joined; an indented line (a YAML example) as code on a line
    of its own."""
    parts: list[str] = []
    for line in comment:
        if line.startswith("  "):
            code = html.escape(line[2:]).replace(" ", "&nbsp;")
            parts.append(f"<br><code>{code}</code>")
        elif line:
            parts.append(line)
    return " ".join(parts).replace(" <br>", "<br>")


def lookup(values: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        values = values[key]
    return values


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(values_text: str, values: dict[str, Any], chart: dict[str, Any]) -> str:
    found = entries(values_text)
    described = {entry.path for entry in found if entry.description}

    def expanded(path: tuple[str, ...]) -> bool:
        value = lookup(values, path)
        return (
            bool(value)
            and isinstance(value, dict)
            and any(other[: len(path)] == path and len(other) > len(path) for other in described)
        )

    rows = []
    for entry in found:
        # Keys inside a mapping shown as one value are part of that value.
        if not all(expanded(entry.path[:depth]) for depth in range(1, len(entry.path))):
            continue
        if expanded(entry.path):
            if entry.description:
                rows.append(f"| `{'.'.join(entry.path)}` | | {cell(entry.description)} |")
            continue
        default = json.dumps(lookup(values, entry.path), separators=(", ", ": "))
        rows.append(f"| `{'.'.join(entry.path)}` | `{cell(default)}` | {cell(entry.description)} |")
    return "\n".join(
        [
            f"# {chart['name']}",
            "",
            "<!-- Written by hack/chart_readme.py from values.yaml (make chart-readme): edit"
            " values.yaml, not this file. -->",
            "",
            " ".join(chart["description"].split()),
            "",
            f"Chart {chart['version']}, operator {chart['appVersion']}, Kubernetes"
            f" {chart['kubeVersion']}. Installing, upgrading and what the chart renders:"
            " [the install guide](../../docs/guides/install.md#installing-with-helm).",
            "",
            "## Values",
            "",
            "| Key | Default | Description |",
            "| --- | --- | --- |",
            *rows,
            "",
        ]
    )


def render_chart(chart_dir: Path = CHART) -> str:
    values_text = (chart_dir / "values.yaml").read_text()
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    return render(values_text, yaml.safe_load(values_text), chart)


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    README.write_text(render_chart())
    print(f"wrote {README}")


if __name__ == "__main__":
    main()
