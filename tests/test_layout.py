"""The package layout keeps its promises: imports run one way down the pipeline, with no cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "asr"

# Bottom to top: a module may import its own layer and the layers before it, never one after it.
LAYERS = ["config", "masks", "audio", "data", "model", "scoring", "decoding", "training", "inference", "analysis",
          "cli"]


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Package modules that ``name`` imports anywhere in its file, lazy imports inside functions included."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        targets |= {c for c in candidates if c in modules and c != name}
    return targets


def _layer(name: str) -> int:
    parts = name.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 else -1  # the package root may import anything, lazily


def test_every_module_has_a_layer():
    missing = [name for name in _modules() if name != "asr" and name.split(".")[1] not in LAYERS]
    assert not missing, f"add these to LAYERS: {missing}"


def test_imports_run_down_the_pipeline():
    modules = _modules()
    upward = [f"{name} -> {target}" for name, path in modules.items() if name != "asr"
              for target in _imports(name, path, modules) if target != "asr" and _layer(target) > _layer(name)]
    assert not upward, "imports against the pipeline:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    modules = _modules()
    graph = {name: _imports(name, path, modules) - {"asr"} for name, path in modules.items()}
    # a package's __init__ is reached through its submodules' parents: leave those edges out
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            cycle = stack[stack.index(node):] + [node]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        for target in sorted(graph[node]):
            visit(target, stack + [node])
        done.add(node)

    for name in sorted(graph):
        visit(name, [])


def test_every_module_imports_alone():
    """Each module imported first in a fresh interpreter: an order-dependent cycle would fail here."""
    code = ("import importlib, sys\n"
            "for name in sys.argv[1:]:\n"
            "    importlib.import_module(name)\n"
            "    for loaded in [m for m in sys.modules if m == 'asr' or m.startswith('asr.')]:\n"
            "        del sys.modules[loaded]\n")
    result = subprocess.run([sys.executable, "-c", code, *_modules()], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
