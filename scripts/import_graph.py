"""Print the import graph between attnflow_core's subpackages (from the source, nothing is run).

    python scripts/import_graph.py            # edges "importer -> imported (modules)"
"""
from __future__ import annotations

import ast
import collections
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "attnflow_core"


def owner(rel: Path) -> str:
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def targets(path: Path, rel: Path):
    parts = ["attnflow_core", *rel.parent.parts]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            t = parts[: len(parts) - node.level + 1] + (node.module.split(".") if node.module else [])
            yield from ([a.name for a in node.names] if len(t) == 1 else [t[1]])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("attnflow_core."):
            yield node.module.split(".")[1]


def main() -> None:
    edges: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG)
        if "__pycache__" in rel.parts:
            continue
        src = owner(rel)
        for t in targets(p, rel):
            if t != src:
                edges[(src, t)].add(rel.as_posix())
    for (a, b), mods in sorted(edges.items()):
        print(f"{a:12s} -> {b:12s} ({len(mods)} module{'s' if len(mods) > 1 else ''})")


if __name__ == "__main__":
    main()
