"""The import rules of docs/architecture.md, and small rooms: checked on the source, not by convention."""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("theory", "drop_core", "app")
# drop_core's layers, left to right (docs/architecture.md): a module may import its own layer or one to its left.
LAYERS = (("errors", "validate", "registry"),
          ("data", "models", "train", "scoring", "quotas", "select", "metrics", "analysis", "store", "cache"),
          ("presets", "config"), ("pipeline",), ("sweep",), ("cli", "cli_sweep", "__main__"))
RANK = {room: i for i, layer in enumerate(LAYERS) for room in layer}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _library_rooms(path: Path) -> set[str]:
    """The drop_core rooms (top-level modules or packages) that `path` imports, relative imports included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = path.relative_to(REPO / "drop_core").parts
    rooms: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            dotted = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            base = here[:len(here) - node.level]
            dotted = [".".join(("drop_core", *base, *([node.module] if node.module else [a.name]))) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            dotted = [f"{node.module}.{a.name}" for a in node.names] if node.module == "drop_core" else [node.module]
        else:
            continue
        rooms |= {d.split(".")[1] for d in dotted if d.startswith("drop_core.")}
    return rooms


def _room(path: Path) -> str:
    return path.relative_to(REPO / "drop_core").parts[0].removesuffix(".py")


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


@pytest.mark.parametrize("path", [p for p in _sources("drop_core") if _room(p) != "__init__"],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_library_layers_point_one_way(path):
    room = _room(path)
    assert room in RANK, f"drop_core/{room} is in no layer of docs/architecture.md; add it to LAYERS and the doc"
    imported = _library_rooms(path) - {room}
    unknown = imported - RANK.keys()
    assert not unknown, f"{path.name} imports drop_core rooms {sorted(unknown)} that no layer lists"
    right = {r for r in imported if RANK[r] > RANK[room]}
    assert not right, f"{path.relative_to(REPO)} ({room}) imports {sorted(right)}, a layer to its right"
    forbidden = {"train": {"scoring"}, "store": {"pipeline"}}.get(room, set()) & imported
    assert not forbidden, f"drop_core/{room} must not import {sorted(forbidden)} (docs/architecture.md)"


def test_workers_never_call_streamlit():
    bad = {m for m in _imports(REPO / "app" / "worker.py") if m.split(".")[0] == "streamlit"}
    assert not bad, f"app/worker.py imports {sorted(bad)}; background work must not call Streamlit"


@pytest.mark.parametrize("path", [p for pkg in PACKAGES for p in _sources(pkg)] + [REPO / "streamlit_app.py"],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_nothing_imports_bench(path):
    bad = {m for m in _imports(path) if m.split(".")[0] == "bench"}
    assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}; bench/ is a leaf"
