"""The layout rules of docs/architecture.md, checked by walking the imports of the repository's own files (AST).

Each rule is a function ``check_*(root) -> list[Violation]`` so the same code runs on this repository and on
the small synthetic trees at the bottom of this file, which prove that every rule can fail.
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".venv", "venv", ".git", "__pycache__", "node_modules", "data", "out", "test-results"}
SHARED_ENGINE = {"__init__", "specs", "cli", "io", "png", "settings", "device", "errors"}
SHARED_TOPIC = "datasets"  # an engine topic every other topic may use
PAGE_LINES, UI_LINES, ENGINE_LINES = 300, 300, 600
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


class Import(NamedTuple):
    file: str  # relative to the root, with "/"
    line: int
    module: str  # absolute dotted name (relative imports resolved)
    names: tuple[str, ...]  # what a ``from module import ...`` takes ("" for a plain ``import``)
    nested: bool  # inside a function or class body: runs when called, not at import time


class Violation(NamedTuple):
    file: str
    line: int
    target: str
    rule: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.rule}: {self.target}"


# ------------------------------------------------------------------------------------------ reading the tree
def py_files(root: Path) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(part in SKIP_DIRS or part.startswith(".") for part in rel.parts[:-1]):
            continue
        out.append(rel.as_posix())
    return out


def module_name(rel: str) -> str:
    parts = rel[:-3].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _package_of(rel: str) -> list[str]:
    parts = rel[:-3].split("/")
    return parts[:-1]  # the folder: for a package's __init__ that is the package itself


@functools.lru_cache(maxsize=None)
def _parse(root: Path) -> dict[str, tuple[Import, ...]]:
    found: dict[str, tuple[Import, ...]] = {}
    for rel in py_files(root):
        tree = ast.parse((root / rel).read_text(encoding="utf-8"), filename=rel)
        imports: list[Import] = []

        def visit(node: ast.AST, nested: bool) -> None:
            for child in ast.iter_child_nodes(node):
                inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))
                if isinstance(child, ast.Import):
                    imports.extend(Import(rel, child.lineno, a.name, (), nested) for a in child.names)
                elif isinstance(child, ast.ImportFrom):
                    base = child.module or ""
                    if child.level:
                        pkg = _package_of(rel)
                        pkg = pkg[: len(pkg) - (child.level - 1)] if child.level > 1 else pkg
                        base = ".".join(pkg + ([base] if base else []))
                    imports.append(Import(rel, child.lineno, base, tuple(a.name for a in child.names), nested))
                visit(child, inner)

        visit(tree, False)
        found[rel] = tuple(imports)
    return found


def imports(root: Path) -> dict[str, tuple[Import, ...]]:
    return _parse(root.resolve())


def modules(root: Path) -> dict[str, str]:
    """Dotted name -> file, for every module of the tree."""
    return {module_name(rel): rel for rel in py_files(root)}


def targets(imp: Import, mods: dict[str, str] | None = None) -> list[str]:
    """The modules an import names: ``from a import b`` names ``a.b`` when that is a module of the tree
    (``mods``), else ``a``; ``import a.b`` names ``a.b``."""
    if not imp.names:
        return [imp.module]
    subs = [f"{imp.module}.{n}" for n in imp.names if n != "*"]
    if mods is not None:
        found = [s for s in subs if s in mods]
        rest = len(found) < len([n for n in imp.names])
        return found + ([imp.module] if rest or not found else [])
    return [imp.module] + subs


def _top(name: str) -> str:
    return name.split(".")[0]


def _topics(root: Path, layer: str) -> set[str]:
    base = root / layer
    return {p.name for p in base.iterdir() if p.is_dir() and (p / "__init__.py").exists()} if base.is_dir() else set()


def _topic_of(name: str, layer: str, topics: set[str]) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == layer and parts[1] in topics else None


# ------------------------------------------------------------------------------------------------- the rules
def check_pages(root: Path) -> list[Violation]:
    """pages/*.py and app.py import only streamlit, ui and the standard library."""
    out = []
    for rel, imps in imports(root).items():
        if not (rel == "app.py" or (rel.startswith("pages/") and rel.count("/") == 1)):
            continue
        for imp in imps:
            if _top(imp.module) not in {"streamlit", "ui"} | STDLIB:
                out.append(Violation(rel, imp.line, imp.module, "a page imports only streamlit and ui"))
    return out


def check_page_setup(root: Path) -> list[Violation]:
    """Every page (and app.py) starts with ``nav.page_setup("<its own file>")``: title, icon and sidebar from
    ui/nav.PAGES (Streamlit's own page list is hidden, so a page without it has no way to the others)."""
    out = []
    for rel in py_files(root):
        if not (rel == "app.py" or (rel.startswith("pages/") and rel.count("/") == 1)):
            continue
        tree = ast.parse((root / rel).read_text(encoding="utf-8"))
        calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
                 and getattr(node.func, "attr", getattr(node.func, "id", "")) == "page_setup"]
        if not any(c.args and isinstance(c.args[0], ast.Constant) and c.args[0].value == rel for c in calls):
            out.append(Violation(rel, 1, f'nav.page_setup("{rel}")', "a page calls ui.nav.page_setup with its file"))
    return out


def check_ui(root: Path) -> list[Violation]:
    """ui/<topic>/ never imports another ui topic nor another engine topic; shared ui modules import no topic."""
    ui_topics, engine_topics = _topics(root, "ui"), _topics(root, "engine")
    out = []
    for rel, imps in imports(root).items():
        if not rel.startswith("ui/"):
            continue
        own = _topic_of(module_name(rel), "ui", ui_topics)
        for imp in imps:
            found: dict[str, str] = {}  # rule -> the first module of this import that breaks it
            for name in targets(imp):
                other = _topic_of(name, "ui", ui_topics)
                if other is not None and other != own:
                    found.setdefault(f"ui/{own}/ imports another ui topic" if own else
                                     "a shared ui module imports a ui topic", name)
                engine = _topic_of(name, "engine", engine_topics)
                if own and engine not in (None, own, SHARED_TOPIC):
                    found.setdefault(f"ui/{own}/ imports another engine topic", name)
            out.extend(Violation(rel, imp.line, name, rule) for rule, name in found.items())
    return out


def check_engine(root: Path) -> list[Violation]:
    """engine/** imports no streamlit, plotly, runs, cache or ui; engine/<topic> no other topic (datasets and
    the shared modules allowed; a topic's __main__.py may use any); engine/*.py are only the shared modules."""
    topics = _topics(root, "engine")
    out = []
    for rel, imps in imports(root).items():
        if not rel.startswith("engine/"):
            continue
        own = _topic_of(module_name(rel), "engine", topics)
        if own is None and rel.count("/") == 1 and Path(rel).stem not in SHARED_ENGINE:
            out.append(Violation(rel, 1, module_name(rel), "not a shared engine module: move it into a topic"))
        for imp in imps:
            if _top(imp.module) in {"streamlit", "plotly", "runs", "cache", "ui"}:
                out.append(Violation(rel, imp.line, imp.module, "the engine imports no streamlit/plotly/runs/cache/ui"))
            if rel.endswith("/__main__.py"):
                continue
            for name in targets(imp):
                other = _topic_of(name, "engine", topics)
                if other is None or other == own or (own is not None and other == SHARED_TOPIC):
                    continue
                rule = (f"engine/{own}/ imports another engine topic" if own else
                        "a shared engine module imports a topic")
                out.append(Violation(rel, imp.line, name, rule))
                break
    return out


def check_main_imported_by_nothing(root: Path) -> list[Violation]:
    """A package's __main__.py (its CLI, which may import across topics) is imported by no module of the lab;
    only tests may import one, to call its ``main()`` in-process instead of paying for a subprocess."""
    out = []
    for rel, imps in imports(root).items():
        if rel.startswith("tests/"):
            continue
        for imp in imps:
            for name in targets(imp):
                if name.endswith(".__main__"):  # a package's __main__.py (the stdlib's bare __main__ is not ours)
                    out.append(Violation(rel, imp.line, name, "__main__.py is imported by nothing"))
    return out


def check_runs_and_cache(root: Path) -> list[Violation]:
    """runs/ and cache/ import no streamlit, plotly or ui, and no torch at import time; cache never imports runs."""
    out = []
    for rel, imps in imports(root).items():
        layer = rel.split("/")[0]
        if layer not in ("runs", "cache") or "/" not in rel:
            continue
        for imp in imps:
            top = _top(imp.module)
            if top in ("streamlit", "plotly", "ui"):
                out.append(Violation(rel, imp.line, imp.module, f"{layer} imports no streamlit/plotly/ui"))
            elif top == "torch" and not imp.nested:
                out.append(Violation(rel, imp.line, imp.module, f"{layer} imports no torch at import time"))
            elif layer == "cache" and top == "runs":
                out.append(Violation(rel, imp.line, imp.module, "the store does not know the job runner"))
    return out


def import_graph(root: Path) -> dict[str, dict[str, Import]]:
    """Module -> {module of the tree it imports (top level or inside a function): the import}."""
    mods = modules(root)
    graph: dict[str, dict[str, Import]] = {m: {} for m in mods}
    for rel, imps in imports(root).items():
        src = module_name(rel)
        for imp in imps:
            for name in targets(imp, mods):
                while name and name not in mods:  # ``import a.b.c`` of a name inside module a.b
                    name = name.rpartition(".")[0]
                if name:
                    graph[src].setdefault(name, imp)
    return graph


def find_cycles(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """One cycle (a list of modules, first == last) per strongly connected group of modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, {})):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph.get(v, {}):
                groups.append(sorted(group))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for v in sorted(graph):
            if v not in index:
                strong(v)
    finally:
        sys.setrecursionlimit(limit)
    cycles = []
    for group in groups:
        members, start = set(group), group[0]
        path, seen = [start], {start}
        while True:  # walk inside the group until we come back to a module already on the path
            nxt = sorted(w for w in graph[path[-1]] if w in members)
            step = next((w for w in nxt if w == start), None) or next((w for w in nxt if w not in seen), nxt[0])
            if step in seen:
                cycles.append(path[path.index(step):] + [step])
                break
            path.append(step)
            seen.add(step)
    return cycles


def check_cycles(root: Path) -> list[Violation]:
    """No import cycles between the tree's modules (imports inside functions count too)."""
    graph = import_graph(root)
    out = []
    for cycle in find_cycles(graph):
        hops = " -> ".join(f"{b} ({graph[a][b].file}:{graph[a][b].line})" for a, b in zip(cycle, cycle[1:]))
        first = graph[cycle[0]][cycle[1]]
        out.append(Violation(first.file, first.line, f"{cycle[0]} -> {hops}", "import cycle"))
    return out


def check_sizes(root: Path) -> list[Violation]:
    """pages/*.py and ui/**.py are at most 300 lines, engine modules at most 600."""
    out = []
    for rel in py_files(root):
        if rel.startswith("pages/") and rel.count("/") == 1:
            cap = PAGE_LINES
        elif rel.startswith("ui/"):
            cap = UI_LINES
        elif rel.startswith("engine/"):
            cap = ENGINE_LINES
        else:
            continue
        n = len((root / rel).read_text(encoding="utf-8").splitlines())
        if n > cap:
            out.append(Violation(rel, n, f"{n} lines", f"longer than {cap} lines"))
    return out


# ------------------------------------------------------------------------------------- the rules, enforced here
RULES = [check_pages, check_page_setup, check_ui, check_engine, check_main_imported_by_nothing, check_runs_and_cache,
         check_cycles, check_sizes]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_repository_follows_the_layout(rule):
    found = rule(ROOT)
    assert not found, f"{rule.__doc__ or rule.__name__}\n" + "\n".join(map(str, found))


def test_runs_and_cache_import_no_torch_and_no_streamlit():
    code = "import sys, runs, runs.kinds, cache; print(sorted({'torch', 'streamlit'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"importing runs and cache imported {out.stdout.strip()}"


def test_the_walk_sees_the_repository():
    files = py_files(ROOT)
    assert "app.py" in files and "runs/__init__.py" in files and "tests/test_layout.py" in files
    assert not any(f.startswith(".venv/") for f in files)
    graph = import_graph(ROOT)
    assert "runs.kinds" in graph["runs"] and not graph["runs"]["runs.kinds"].nested
    assert "runs" in graph["ui.jobs"] and graph["ui.jobs"]["runs"].nested  # imports inside functions count too


# --------------------------------------------------------------------------- every rule can fail: a small tree
SYNTHETIC = {
    "app.py": "import numpy\nimport streamlit as st\nnav.page_setup('pages/1_A.py')\n",
    "pages/1_A.py": "import streamlit as st\nfrom pathlib import Path\nfrom ui import nav\nimport engine.alpha\n"
                    "import runs\nnav.page_setup('pages/1_A.py')\n",
    "pages/2_B.py": "import streamlit as st\n" + "x = 1\n" * 299,  # exactly 300 lines: allowed
    "ui/__init__.py": "",
    "ui/state.py": "import streamlit\n",
    "ui/nav.py": "from ui.alpha import a\n",
    "ui/alpha/__init__.py": "",
    "ui/alpha/a.py": "from ui import state\nfrom ui.beta import b\nimport engine.alpha.core\n"
                     "from engine.beta import y\nfrom engine import datasets\nimport runs\n",
    "ui/alpha/big.py": "x = 1\n" * 301,
    "ui/beta/__init__.py": "",
    "ui/beta/b.py": "def f():\n    from ui.alpha import a\n",
    "engine/__init__.py": "",
    "engine/specs.py": "import dataclasses\n",
    "engine/stray.py": "",
    "engine/datasets/__init__.py": "",
    "engine/alpha/__init__.py": "",
    "engine/alpha/core.py": "import plotly\nfrom engine.beta import y\nfrom engine.datasets import z\n"
                            "from engine import specs\ndef f():\n    import streamlit\n",
    "engine/alpha/c1.py": "from engine.alpha import c2\n",
    "engine/alpha/c2.py": "def g():\n    from engine.alpha.c1 import h\n",
    "engine/alpha/__main__.py": "from engine.beta import y\n",
    "engine/alpha/huge.py": "x = 1\n" * 601,
    "engine/beta/__init__.py": "",
    "engine/beta/y.py": "from ..alpha import core\n",
    "engine/datasets/d.py": "from engine.alpha import core\n",
    "runs/__init__.py": "import torch\nimport streamlit\ndef f():\n    import torch\n",
    "runs/__main__.py": "import runs\n",
    "cache/__init__.py": "from runs import x\nimport numpy\n",
    "tests/t.py": "from runs.__main__ import main\nimport engine.alpha.__main__\n",
    "bench/b.py": "from runs.__main__ import main\nimport engine.alpha.__main__\n",
    ".venv/lib/bad.py": "import streamlit\nfrom ui.beta import b\n",
}


@pytest.fixture
def tree(tmp_path):
    for rel, text in SYNTHETIC.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def _pairs(found: list[Violation]) -> set[tuple[str, str]]:
    return {(v.file, v.target) for v in found}


def test_synthetic_pages(tree):
    assert _pairs(check_pages(tree)) == {("app.py", "numpy"), ("pages/1_A.py", "engine.alpha"),
                                         ("pages/1_A.py", "runs")}


def test_synthetic_page_setup(tree):
    assert _pairs(check_page_setup(tree)) == {("app.py", 'nav.page_setup("app.py")'),  # names another page
                                              ("pages/2_B.py", 'nav.page_setup("pages/2_B.py")')}  # none


def test_synthetic_ui(tree):
    found = check_ui(tree)
    assert _pairs(found) == {("ui/nav.py", "ui.alpha"), ("ui/alpha/a.py", "ui.beta"), ("ui/alpha/a.py", "engine.beta"),
                             ("ui/beta/b.py", "ui.alpha")}
    assert "ui/beta/b.py:2: ui/beta/ imports another ui topic: ui.alpha" in map(str, found)  # nested imports count


def test_synthetic_engine(tree):
    assert _pairs(check_engine(tree)) == {
        ("engine/stray.py", "engine.stray"), ("engine/alpha/core.py", "plotly"),
        ("engine/alpha/core.py", "engine.beta"), ("engine/alpha/core.py", "streamlit"),
        ("engine/beta/y.py", "engine.alpha"),  # a relative import is resolved first
        ("engine/datasets/d.py", "engine.alpha"),  # the shared topic uses no other topic
    }


def test_synthetic_main_and_runs_and_cache(tree):
    assert _pairs(check_main_imported_by_nothing(tree)) == {("bench/b.py", "runs.__main__"),
                                                            ("bench/b.py", "engine.alpha.__main__")}
    assert {(v.file, v.line, v.target) for v in check_runs_and_cache(tree)} == {
        ("runs/__init__.py", 1, "torch"), ("runs/__init__.py", 2, "streamlit"), ("cache/__init__.py", 1, "runs")}


def test_synthetic_cycles_and_sizes(tree):
    found = {v.target.split(" -> ")[0]: v for v in check_cycles(tree)}
    # c1 <-> c2 (c2's import is inside a function), core <-> y (y's is relative), ui.alpha.a <-> ui.beta.b
    assert sorted(found) == ["engine.alpha.c1", "engine.alpha.core", "ui.alpha.a"]
    assert str(found["engine.alpha.c1"]) == ("engine/alpha/c1.py:1: import cycle: engine.alpha.c1 -> engine.alpha.c2 "
                                             "(engine/alpha/c1.py:1) -> engine.alpha.c1 (engine/alpha/c2.py:2)")
    assert _pairs(check_sizes(tree)) == {("ui/alpha/big.py", "301 lines"), ("engine/alpha/huge.py", "601 lines")}


def test_a_clean_tree_passes(tmp_path):
    for rel, text in {"app.py": "import streamlit\nfrom ui import nav\nnav.page_setup('app.py')\n",
                      "ui/__init__.py": "", "ui/nav.py": "",
                      "engine/__init__.py": "", "engine/alpha/__init__.py": "from engine.alpha import core\n",
                      "engine/alpha/core.py": "from engine import specs\n", "engine/specs.py": ""}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert [rule(tmp_path) for rule in RULES] == [[]] * len(RULES)
