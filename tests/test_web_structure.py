"""The web app's modules import one way: no cycles, and no blueprint imports another."""

from __future__ import annotations

import ast
from pathlib import Path

WEBAPP = Path(__file__).resolve().parents[1] / "webapp"


def _imports() -> dict[str, set[str]]:
    """Every ``webapp.X`` module each webapp module imports, at module level or in a function."""
    graph: dict[str, set[str]] = {}
    for path in sorted(WEBAPP.glob("*.py")):
        name = path.stem
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module.startswith("webapp."):
                    found.add(node.module.split(".")[1])
                elif node.module == "webapp":
                    found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("webapp."):
                        found.add(alias.name.split(".")[1])
        graph[name] = {m for m in found if m != name and (WEBAPP / f"{m}.py").exists()}
    return graph


def _blueprints() -> set[str]:
    return {
        p.stem
        for p in WEBAPP.glob("*.py")
        if "Blueprint(" in p.read_text() and "bp = Blueprint(" in p.read_text()
    }


def test_no_import_cycle_between_webapp_modules() -> None:
    graph = _imports()
    graph.pop("__init__", None)  # the app factory registers every blueprint
    for deps in graph.values():
        deps.discard("__init__")
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        assert name not in visiting, f"import cycle: {' -> '.join([*visiting, name])}"
        visiting.append(name)
        for dep in sorted(graph.get(name, ())):
            visit(dep)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_trade_blueprints_do_not_import_each_other() -> None:
    graph = _imports()
    blueprints = _blueprints() - {"auth"}  # auth's session helpers are used by every page
    assert {"trades", "disputes", "arbitration", "listings", "profiles"} <= blueprints
    for name in sorted(blueprints):
        assert not graph[name] & blueprints, f"{name} imports {graph[name] & blueprints}"
