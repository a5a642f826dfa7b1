"""What ships: the runtime package imports only what it declares, its import contracts (the
house's layers and pure modules away from the I/O edges, run by `lint-imports`) catch a breach,
and it carries neither the sandbox Google nor the dev control plane."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "operator" / "google_token_operator"
ROOT = "google_token_operator"

# The distribution each imported top-level module comes from.
DISTRIBUTION = {"prometheus_client": "prometheus-client", "yaml": "pyyaml"}


def module_path(name: str) -> Path:
    parts = name.split(".")
    folder = PACKAGE.joinpath(*parts)
    return folder / "__init__.py" if folder.is_dir() else folder.with_suffix(".py")


def imports_of(name: str) -> set[str]:
    """Absolute names imported by package module `name` (relative imports resolved)."""
    path = module_path(name)
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                stem = ".".join([ROOT, *base, *([node.module] if node.module else [])])
            else:
                stem = node.module or ""
            found.add(stem)
            found.update(f"{stem}.{alias.name}" for alias in node.names)
    return found


def package_modules() -> list[str]:
    names = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).with_suffix("")
        parts = [p for p in relative.parts if p != "__init__"]
        names.append(".".join(parts))
    return names


def internal(name: str) -> str | None:
    """The package module an absolute import names, or None for outside modules."""
    if not name.startswith(ROOT + ".") and name != ROOT:
        return None
    parts = name.split(".")[1:]
    while parts:
        candidate = ".".join(parts)
        if module_path(candidate).exists():
            return candidate
        parts.pop()
    return ""


def test_the_package_declares_exactly_the_distributions_it_imports() -> None:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    imported = {
        name.split(".")[0]
        for module in package_modules()
        for name in imports_of(module)
        if internal(name) is None
    } - stdlib
    declared = {
        requirement.split(">")[0].split("=")[0].strip()
        for requirement in tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
            "dependencies"
        ]
    }
    assert {DISTRIBUTION.get(name, name) for name in imported} == declared


def lint_imports(source_root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with the repository's contracts over the package found in source_root."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache", "--no-logo"],
        cwd=REPO,
        env={"PYTHONPATH": str(source_root), "PATH": ""},
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_source_tree_keeps_the_import_contracts() -> None:
    result = lint_imports(REPO / "operator")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("naming.py", "import aiohttp", "Pure modules reach no edge and no I/O library"),
        ("clients.py", "from .kube import api", "Pure modules reach no edge and no I/O library"),
        ("consent/api.py", "from ..reconcile import client_pass", "Imports run down the house"),
        ("kube/informer.py", "from ..runtime import cluster", "Imports run down the house"),
    ],
)
def test_the_import_contracts_fail_on_a_breach(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    copy = tmp_path / ROOT
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / module).open("a") as source:
        source.write(f"\n{line}\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert f"{broken} BROKEN" in result.stdout, result.stdout + result.stderr


def loaded_modules(code: str) -> set[str]:
    """The modules loaded after running `code` in a fresh interpreter (outside the checkout)."""
    probe = f"import sys, contextlib\n{code}\nprint('\\n'.join(sorted(sys.modules)))\n"
    output = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd="/"
    ).stdout
    return set(output.split())


def test_run_loads_no_sandbox_no_devkit_and_no_cryptography_of_its_own() -> None:
    loaded = loaded_modules(
        "from google_token_operator import runner, handlers\n"
        "from google_token_operator.commands import cli\n"
        "with contextlib.suppress(SystemExit):\n"
        "    cli.main(['run', '--help'])"
    )
    assert {"kopf", "google_token_operator.runner"} <= loaded  # the probe worked
    # The Kubernetes client imports google-auth (for GKE kubeconfigs), which imports
    # cryptography; nothing of this package adds a cryptography module to that.
    libraries = loaded_modules("import kopf, kubernetes, aiohttp, prometheus_client")
    unwanted = sorted(
        name
        for name in loaded
        if name.split(".")[0] in {"google_token_sandbox", "devkit"}
        or (name.split(".")[0] == "cryptography" and name not in libraries)
    )
    assert unwanted == []


def test_the_wheel_carries_the_product_only(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), REPO],
        check=True,
    )
    [wheel] = tmp_path.glob("google_token_operator-*.whl")
    files = zipfile.ZipFile(wheel).namelist()
    assert "google_token_operator/runner.py" in files
    assert "google_token_operator/consent/callback/templates/authorized.html" in files
    assert [f for f in files if "sandbox" in f or "devkit" in f or "devcluster" in f] == []
    [entry_points] = [f for f in files if f.endswith(".dist-info/entry_points.txt")]
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    # The kubectl plugin is the same command under the name kubectl looks for.
    assert "google-token-operator = google_token_operator.commands.cli:main" in scripts
    assert "kubectl-google_token = google_token_operator.commands.cli:main" in scripts


def test_the_image_installs_only_the_operator_wheel_into_its_venv() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    product = dockerfile.rsplit("FROM runtime AS operator", 1)[1]
    assert "COPY --from=builder /opt/venv /opt/venv" in product
    assert "pip install --only-binary=:all: /wheels/google_token_operator-*.whl" in dockerfile
