"""Which library files a rule's script reaches, for the rules' `code` inputs.

Snakemake does not track imported code, so each rule lists the library files its script imports,
directly or through other modules: editing one reruns exactly the rules that use it. Only the
standard library is imported here, because the workflow calls this while it parses.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def script_sources(script: str | Path, package_dir: Path = PACKAGE_DIR) -> list[str]:
    """Source files of every cineflow module the script at `script` imports, transitively."""
    tree = ast.parse(Path(script).read_text(encoding="utf-8"))
    names = [a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return sorted({f for name in names for f in module_sources(name, package_dir)})


def module_sources(module: str, package_dir: Path = PACKAGE_DIR) -> list[str]:
    """Source files of `module` and every cineflow module it imports, transitively.

    Snakemake does not track imported code, so rules list these files as inputs: editing a
    module reruns exactly the rules whose scripts reach it.
    """
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or _module_path(name, package_dir) is None:
            continue
        seen.add(name)
        todo += _imports(name, package_dir)
    return sorted(str(_module_path(n, package_dir)) for n in seen)


@lru_cache(maxsize=None)
def _imports(name: str, package_dir: Path) -> list[str]:
    """The package's modules that module `name` imports (parsed once per process: every rule asks)."""
    package = package_dir.name
    path = _module_path(name, package_dir)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == package]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import inside the package
                base = name.rsplit(".", node.level)[0] if path.name != "__init__.py" else name
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.split(".")[0] == package:
                found.append(target)
                found += [f"{target}.{a.name}" for a in node.names]
    return found


@lru_cache(maxsize=None)
def _module_path(name: str, package_dir: Path) -> Path | None:
    parts = name.split(".")
    if parts[0] != package_dir.name:
        return None
    rel = Path(*parts[1:]) if len(parts) > 1 else Path()
    for candidate in (package_dir / rel.with_suffix(".py") if parts[1:] else None, package_dir / rel / "__init__.py"):
        if candidate is not None and candidate.is_file():
            return candidate
    return None
