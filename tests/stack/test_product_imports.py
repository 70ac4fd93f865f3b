"""Product code, DAGs and benchmarks never import the test suite (tests import them, not back)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from streamforge.stack.paths import REPO_ROOT

PRODUCT = ("plugins", "dags", "worker_images", "bench")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


@pytest.mark.parametrize("folder", PRODUCT)
def test_no_module_imports_tests(folder: str) -> None:
    offenders = {
        str(path.relative_to(REPO_ROOT)): sorted(n for n in _imports(path) if n == "tests" or n.startswith("tests."))
        for path in (REPO_ROOT / folder).rglob("*.py")
        if ".venv" not in path.parts
    }
    assert not {k: v for k, v in offenders.items() if v}
