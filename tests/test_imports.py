"""The package's import structure: no circle, no private name taken from another module, layers kept.

Every ``import`` and ``from ... import`` in ``reidgraph/`` counts, those inside functions too: a lazy
import breaks a circle only at run time.
"""
import ast
from pathlib import Path

import reidgraph

ROOT = Path(reidgraph.__file__).parent


def modules() -> dict[str, Path]:
    """Each module's dotted name and file (a package is its ``__init__.py``)."""
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = ["reidgraph", *path.relative_to(ROOT).with_suffix("").parts]
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, str | None]]:
    """``(module imported, name taken from it or None)`` for each reidgraph import of a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names if a.name.split(".")[0] == "reidgraph"]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            if target.split(".")[0] != "reidgraph":
                continue
            for alias in node.names:  # "from . import x" takes the module x where there is one
                sub = f"{target}.{alias.name}"
                found.append((sub, None) if sub in known else (target, alias.name))
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {target for target, _ in imports(name, path, known) if target in known}
            for name, path in known.items()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_the_circle_finder_finds_a_planted_circle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert circles(edges) == [["a", "b", "c"]] and circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle():
    assert circles(graph()) == []


def test_no_private_name_is_imported_across_modules():
    known = modules()
    taken = [f"{name} takes {target}.{what}" for name, path in known.items()
             for target, what in imports(name, path, known) if what and what.startswith("_") and target != name]
    assert taken == []


def test_re_ranking_does_not_reach_into_training():
    edges = graph()
    reached = {f"{m} -> {t}" for m, targets in edges.items() if m.startswith("reidgraph.rerank")
               for t in targets if t.startswith("reidgraph.engine")}
    assert reached == set()
