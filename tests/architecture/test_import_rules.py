"""The layers' import rules (.importlinter) hold on this tree, and they are able to fail: a copy of the tree with one
forbidden import added must break the named contract."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ccas.settings import REPO_ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("audio", "schemas", "core", "callgen", "avaya_source", "pipeline", "scoring_service", "ccas")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH=root: grimp finds the packages of `root`, never an installed or editable copy of the clone.
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", str(root / ".importlinter")], cwd=root,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), "HOME": str(root)},
                          capture_output=True, text=True, timeout=300)


def test_the_tree_keeps_every_import_rule() -> None:
    result = lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " 0 broken" in result.stdout.split("Contracts:")[-1], result.stdout[-2000:]


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    for package in PACKAGES:
        shutil.copytree(REPO_ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / ".importlinter", root / ".importlinter")
    return root


@pytest.mark.parametrize(("module", "forbidden", "contract"), [
    ("pipeline/main.py", "import ccas.stack.jobserver", "Runtime packages never import the local stack"),
    ("scoring_service/scorer.py", "import callgen", "Runtime packages never import the local stack"),
    ("pipeline/transforms/download.py", "import avaya_source.client", "Layers"),
    ("core/s3.py", "import pipeline.options", "Layers"),
    ("avaya_source/poller.py", "import avaya_source.mock.server", "Nothing in the poller imports the mock recorder"),
])
def test_a_forbidden_import_breaks_its_contract(tree_copy: Path, module: str, forbidden: str, contract: str) -> None:
    target = tree_copy / module
    original = target.read_text()
    try:
        target.write_text(original + f"\n{forbidden}  # added by the test\n")
        result = lint_imports(tree_copy)
    finally:
        target.write_text(original)
    assert result.returncode != 0, f"adding `{forbidden}` to {module} broke no contract:\n{result.stdout[-3000:]}"
    broken = result.stdout.split("Broken contracts")[-1]
    assert contract in broken, broken[-3000:]
    importer = module.removesuffix(".py").replace("/", ".")
    assert importer in broken, broken[-3000:]
