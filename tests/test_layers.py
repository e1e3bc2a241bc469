"""The library's structure: stages import only earlier stages and the core, no two packages import each other,
and functions stay short enough to read (the contracts are in pyproject.toml's [tool.importlinter])."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "cineflow"
MAX_LINES = 60


def test_no_stage_imports_a_later_one_and_no_packages_import_each_other():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint, "import-linter is a test dependency: pip install -e '.[test]'"
    done = subprocess.run([lint, "--no-cache"], cwd=SRC.parents[1], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout


def long_functions(root: Path = SRC, limit: int = MAX_LINES) -> list[str]:
    """Functions longer than `limit` lines whose docstring does not say why they must be ("Long because")."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit and "Long because" not in (ast.get_docstring(node) or ""):
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_library_function_is_over_60_lines_without_saying_why(tmp_path):
    assert long_functions() == []
    # the check itself finds one
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "m.py").write_text(f"def f():\n{body}\n")
    assert long_functions(tmp_path) == [f"m.py:1 f ({MAX_LINES + 1} lines)"]
