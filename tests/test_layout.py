"""The library's shape, checked: the import layers (import-linter's contract in pyproject.toml), no import
cycle between any two modules (imports inside functions included), modules of a readable size, and the
README's layout section naming exactly the modules that exist."""

import re
import sys
from pathlib import Path

import grimp
import networkx as nx
import pytest
from conftest import REPO

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
    from importlinter import configuration
    from importlinter.application.use_cases import lint_imports

    configuration.configure()  # what the `lint-imports` command does first: pick the config readers
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
    """{package path ('' for letitcode/ itself): names listed} from the README's `letitcode/` layout block.

    An entry line is `  name.py  what it is` or `  name/  its modules`; deeper-indented lines continue the
    entry above."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    listed: dict[str, set[str]] = {"": set()}
    current = None
    for line in block.splitlines():
        entry = re.match(r"^  (\S+)", line)
        if entry and not line.startswith("   "):
            name = entry.group(1)
            listed[""].add(name.rstrip("/"))
            current = name.rstrip("/") if name.endswith("/") else None
            rest = line[entry.end() :]
        elif current and line.startswith("   "):
            rest = line
        else:
            current = None
            continue
        if current:
            found = re.findall(r"\b(\w+\.py|\w+/)", rest)
            listed.setdefault(current, set()).update(n for n in found if n != "__init__.py")
    return listed


def _package_names(root: Path) -> tuple[set[str], set[str]]:
    """(modules and subpackages under `root`, recursively; plain data folders, which may be named too)."""
    names, folders = set(), set()
    for p in root.rglob("*"):
        if "__pycache__" in p.parts or p.name == "__init__.py":
            continue
        if p.is_file() and p.suffix == ".py":
            names.add(p.name)
        elif p.is_dir():
            (names if (p / "__init__.py").exists() else folders).add(f"{p.name}/")
    return names, folders


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
        if package:
            present, folders = _package_names(PACKAGE / package)
            missing, stale = present - names, names - present - folders
            assert not missing and not stale, f"README layout of {package}/: missing {missing}, stale {stale}"


def test_the_public_api_resolves_lazily():
    import subprocess

    code = (
        "import sys, letitcode\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "missing = [n for n in letitcode.__all__ if getattr(letitcode, n, None) is None]\n"
        "assert not missing, missing\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
