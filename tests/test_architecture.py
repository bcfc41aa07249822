"""The import rules of docs/architecture.md, and small rooms: checked on the source, not by convention."""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("theory", "drop_core", "app")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _sources(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


@pytest.mark.parametrize("path", _sources("theory"), ids=lambda p: str(p.relative_to(REPO)))
def test_theory_is_pure_math(path):
    bad = {m for m in _imports(path) if m.split(".")[0] in ("drop_core", "app", "streamlit", "altair", "torch")}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", _sources("drop_core"), ids=lambda p: str(p.relative_to(REPO)))
def test_the_library_never_imports_the_app(path):
    bad = {m for m in _imports(path) if m.split(".")[0] in ("app", "streamlit")}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", [p for pkg in PACKAGES for p in _sources(pkg)] + [REPO / "streamlit_app.py"],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_every_module_is_a_small_room(path):
    lines = path.read_text().count("\n")
    assert lines <= 500, f"{path.relative_to(REPO)} has {lines} lines; split it by job"
