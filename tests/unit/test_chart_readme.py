"""The chart's README is what hack/chart_readme.py writes from values.yaml: every value, its
default and its comment, in step with values.yaml."""

from __future__ import annotations

from pathlib import Path

import yaml

from chart_readme import CHART, README, render, render_chart

REPO = Path(__file__).resolve().parents[2]


def test_chart_readme_is_written_from_values_yaml() -> None:
    assert README.read_text() == render_chart(), (
        "charts/google-token-operator/README.md is not in step with values.yaml: "
        "run `make chart-readme`"
    )


def test_every_value_of_the_chart_has_a_row_with_its_default() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = README.read_text()
    for key in values:
        assert f"| `{key}` |" in readme or f"| `{key}." in readme, key
    assert "| `crds.enabled` | `true` | Install the CRDs as part of the release" in readme
    assert '| `resources` | `{"requests": ' in readme  # a mapping without described keys


def test_a_value_added_to_values_yaml_changes_the_readme() -> None:
    values_text = (CHART / "values.yaml").read_text()
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    added = values_text + "\n# What a new setting does | with a pipe.\nnewSetting:\n  depth: 3\n"
    readme = render(added, yaml.safe_load(added), chart)
    assert readme != README.read_text()
    assert '| `newSetting` | `{"depth": 3}` | What a new setting does \\| with a pipe. |' in readme


def test_the_charts_crds_are_the_repositorys_crds() -> None:
    """One source: the templates render files/crds, a link to crds/ (whatever others change
    there reaches the chart as it is)."""
    link = CHART / "files" / "crds"
    assert link.is_symlink() and link.resolve() == REPO / "crds"
    assert not (CHART / "crds").exists(), "Helm would install crds/ on top of the templates"
