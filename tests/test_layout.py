"""The library's shape, checked: the import layers (import-linter's contract in pyproject.toml), no import
cycle between any two modules (imports inside functions included), modules of a readable size, and the
README's layout section naming exactly the modules that exist."""

import re
import sys
from pathlib import Path

import grimp
import networkx as nx
import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "letitcode"
MAX_LINES = 600
# One stdlib-only file by design: it is copied into evaluate metric folders and run as a bare script.
LONG_ON_PURPOSE = {"sandbox/worker.py"}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    sys.path.insert(0, str(REPO))
    try:
        return grimp.build_graph("letitcode", cache_dir=None)
    finally:
        sys.path.remove(str(REPO))


def test_the_layers_contract_is_kept():
    from importlinter.application.use_cases import lint_imports

    assert lint_imports(config_filename=str(REPO / "pyproject.toml"), cache_dir=None, no_logo=True), (
        "an import crosses the layers in pyproject.toml [tool.importlinter]: run `lint-imports`"
    )


def test_no_import_cycles(graph: grimp.ImportGraph):
    g = nx.DiGraph()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            g.add_edge(module, imported)
    cycles = [sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1]
    assert not cycles, f"import cycles: {cycles}"


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_modules_stay_readable():
    long = {}
    for path in _modules():
        rel = path.relative_to(PACKAGE).as_posix()
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES and rel not in LONG_ON_PURPOSE:
            long[rel] = n
    assert not long, f"modules over {MAX_LINES} lines (split them by concept): {long}"


def _readme_layout() -> dict[str, set[str]]:
    """{package path ('' for letitcode/ itself): names listed} from the README's `letitcode/` layout block."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    listed: dict[str, set[str]] = {"": set()}
    for line in block.splitlines():
        m = re.match(r"^  (\S+)\s", line + " ")
        if not m or line.startswith("   "):
            continue
        entry = m.group(1)
        listed[""].add(entry.rstrip("/"))
        if entry.endswith("/"):
            listed[entry.rstrip("/")] = set(re.findall(r"\b([\w]+(?:\.py|/))", line[len(m.group(0)) :]))
    return listed


def test_readme_layout_matches_the_tree():
    listed = _readme_layout()
    top = {
        p.name.removesuffix(".py") if p.is_file() else p.name
        for p in PACKAGE.iterdir()
        if p.name not in ("__init__.py", "__pycache__")
        and (p.suffix == ".py" or (p / "__init__.py").exists())
    }
    top_listed = {n.removesuffix(".py") for n in listed[""]}
    assert top_listed == top, (
        f"README layout vs letitcode/: missing {top - top_listed}, stale {top_listed - top}"
    )
    for package, names in listed.items():
        if not package:
            continue
        root = PACKAGE / package
        present = {
            f"{p.name}/" if p.is_dir() else p.name
            for p in root.rglob("*")
            if "__pycache__" not in p.parts
            and p.name != "__init__.py"
            and (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))
        }
        assert names == present, (
            f"README layout of {package}/: missing {present - names}, stale {names - present}"
        )
