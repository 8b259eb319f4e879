"""What the wheel carries: the package code, its data and the migrations; nothing of the clone besides."""

from __future__ import annotations

import zipfile
from pathlib import Path

from tests.deploy.product import REPO_ROOT

SHIPPED_PACKAGES = {"console", "ccas", "core", "audio", "pipeline", "avaya_source", "scoring_service", "schemas", "callgen"}


def _names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_wheel_ships_the_migrations_as_package_data(ccas_wheel: Path) -> None:
    names = _names(ccas_wheel)
    shipped = sorted(name.rsplit("/", 1)[1] for name in names if name.startswith("ccas/_migrations/versions/"))
    in_clone = sorted(path.name for path in (REPO_ROOT / "alembic" / "versions").glob("*.py"))
    assert shipped == in_clone and shipped, f"wheel: {shipped}, clone: {in_clone}"
    assert {"ccas/_migrations/env.py", "ccas/_migrations/script.py.mako"} <= set(names)
    with zipfile.ZipFile(ccas_wheel) as archive:
        assert archive.read("ccas/_migrations/env.py") == (REPO_ROOT / "alembic" / "env.py").read_bytes()


def test_wheel_holds_no_clone_files(ccas_wheel: Path) -> None:
    names = _names(ccas_wheel)
    top_level = {name.split("/", 1)[0] for name in names if "/" in name and ".dist-info/" not in name}
    assert top_level == SHIPPED_PACKAGES, f"unexpected top-level entries: {sorted(top_level ^ SHIPPED_PACKAGES)}"
    # An `alembic/` folder at the top would shadow the alembic library in every environment the wheel is installed into.
    assert not [name for name in names if name.startswith(("alembic/", "tests/", ".stack/", "ops/"))]
    assert "run_pipeline.py" not in names
    assert not [name for name in names if "__pycache__" in name or name.endswith((".pyc", ".env", "secrets.env"))]
    for data in ("schemas/topics.yaml", "schemas/calls.raw.schema.json", "scoring_service/scorecards/default.yaml",
                 "console/templates/call.html", "console/static/console.js",
                 "ccas/stack/maven/expansion-pom.xml"):
        assert data in names, data


def test_wheel_declares_both_console_scripts(ccas_wheel: Path) -> None:
    with zipfile.ZipFile(ccas_wheel) as archive:
        (entry_points,) = [name for name in archive.namelist() if name.endswith(".dist-info/entry_points.txt")]
        text = archive.read(entry_points).decode()
    assert "ccas = ccas.cli:main" in text
    assert "ccas-pipeline = pipeline.main:main" in text
