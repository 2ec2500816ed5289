"""Imports point one way: no cycles between nerfreg's subpackages, and the layers above the
components (engine, apis, viewer, cli) are imported only from above."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / 'nerfreg'
ORDER = ['cli', 'viewer', 'apis', 'engine']  # each may import those to its right, never to its left


def _package_graph() -> dict[str, set[str]]:
    """``{subpackage or top module: subpackages/modules it imports}`` from the source."""
    tops = {p.stem for p in PKG.iterdir() if p.suffix == '.py' or (p / '__init__.py').is_file()}
    edges: dict[str, set[str]] = defaultdict(set)
    for path in PKG.rglob('*.py'):
        parts = path.relative_to(PKG).with_suffix('').parts
        here = parts[0]
        package = list(parts[:-1])  # the package a relative import starts from
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[:len(package) - node.level + 1]
                    names = ([base + node.module.split('.')] if node.module
                             else [base + [a.name] for a in node.names])
                elif (node.module or '').startswith('nerfreg.'):
                    names = [node.module.split('.')[1:]]
            elif isinstance(node, ast.Import):
                names = [a.name.split('.')[1:] for a in node.names
                         if a.name.startswith('nerfreg.')]
            for name in names:
                if name and name[0] in tops and name[0] != here:
                    edges[here].add(name[0])
    return edges


def test_no_cycles_between_subpackages():
    edges = _package_graph()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            assert state.get(nxt) != 1, f'import cycle: {" -> ".join(path + [node, nxt])}'
            if nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    assert 'engine' in edges['apis'] and 'apis' in edges['cli']  # the graph is really read


def test_engine_apis_cli_are_imported_only_from_above():
    edges = _package_graph()
    for importer, imported in edges.items():
        for layer in ORDER:
            if layer in imported and importer != layer:
                assert importer in ORDER[:ORDER.index(layer)], (
                    f'nerfreg.{importer} imports nerfreg.{layer}, a layer above it')


def test_modules_stay_small():
    """One concept per module: none over 450 lines, the trainer core under 350."""
    sizes = {str(p.relative_to(PKG)): len(p.read_text().splitlines()) for p in PKG.rglob('*.py')}
    assert {k: n for k, n in sizes.items() if n > 450} == {}
    assert sizes['engine/trainer.py'] < 350
