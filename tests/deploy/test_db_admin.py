"""`ccas db`: migrations found without alembic.ini, the URL from --url / CCAS_DATABASE_URL only, the alembic CLI intact."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ccas import db_admin
from tests.deploy.product import REPO_ROOT


def test_the_clone_migrates_from_its_top_level_alembic_folder() -> None:
    # An editable install or the clone on sys.path: no ccas/_migrations, the clone's own folder is used.
    assert not (REPO_ROOT / "ccas" / "_migrations").exists()
    assert db_admin.migrations_dir() == REPO_ROOT / "alembic"
    assert not (REPO_ROOT / "alembic" / "__init__.py").exists(), "a package named alembic would shadow the alembic library"


def test_alembic_is_configured_in_code() -> None:
    config = db_admin.alembic_config("postgresql://ccas:p%40ss@db.example:5432/ccas")
    assert config.config_file_name is None
    assert config.get_main_option("script_location") == str(db_admin.migrations_dir())
    assert config.get_main_option("sqlalchemy.url") == "postgresql+psycopg2://ccas:p%40ss@db.example:5432/ccas"


def test_migrate_needs_an_explicit_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("CCAS_DATABASE_URL", raising=False)
    monkeypatch.setenv("CCAS_STACK_DIR", str(tmp_path))  # even a local stack's secrets would not be read
    assert db_admin.main(["migrate"]) == 2
    assert "CCAS_DATABASE_URL / --url: is not set" in capsys.readouterr().err
    assert db_admin.main(["--url", "mysql://x@y/z", "migrate"]) == 1
    assert "postgresql://" in capsys.readouterr().err


def test_alembic_cli_in_the_clone_still_finds_the_revisions() -> None:
    result = subprocess.run([str(Path(sys.executable).parent / "alembic"), "-c", "alembic.ini", "heads"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    heads = sorted(path.stem.split("_", 1)[0] for path in (REPO_ROOT / "alembic" / "versions").glob("*.py"))
    assert heads[-1] in result.stdout
