"""CCAS — Call Center Agent Scoring: a Beam streaming pipeline that scores agents from their call recordings.

The wheel carries everything the installed commands need at run time. The database migrations live in the clone's top-level
`alembic/` folder (where `alembic` CLI users expect them, and without an `__init__.py`: as a package it would shadow the
`alembic` library whenever the clone is on sys.path); the build copies them into the package as `ccas/_migrations/`, where
`ccas db migrate` finds them once installed. MANIFEST.in puts the same files into an sdist, so a wheel built from it has them too.
"""

import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
MIGRATIONS_SOURCE = "alembic"
MIGRATIONS_TARGET = ("ccas", "_migrations")
# What Alembic reads at run time: the environment script, the revision template (for `alembic revision` users), the revisions.
MIGRATION_FILES = ("env.py", "script.py.mako", "versions/*.py")


def requirements() -> list[str]:
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith(("#", "-"))]


class BuildPyWithMigrations(build_py):
    """build_py, plus the clone's alembic/ migrations copied into the built package as ccas/_migrations/."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install runs from the clone, whose alembic/ folder ccas.db_admin finds directly
        source = HERE / MIGRATIONS_SOURCE
        target = Path(self.build_lib).joinpath(*MIGRATIONS_TARGET)
        # A build folder reused from an earlier build may hold a revision deleted since: start from an empty folder.
        shutil.rmtree(target, ignore_errors=True)
        copied = [path for pattern in MIGRATION_FILES for path in sorted(source.glob(pattern))]
        if not any(path.parent.name == "versions" for path in copied):
            raise RuntimeError(f"no migrations found in {source.resolve()}/versions: the wheel would not be able to migrate")
        for path in copied:
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            self.copy_file(str(path), str(destination), preserve_mode=False)


setup(
    name="ccas",
    version="0.1.0",
    description="Call Center Agent Scoring: Avaya recordings -> Kafka -> Apache Beam -> S3, scoring, PostgreSQL",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["ccas*", "core*", "pipeline*", "avaya_source*", "scoring_service*", "schemas*", "callgen*",
                                    "audio*", "console*"]),
    package_data={"schemas": ["*.json", "*.yaml"], "ccas.stack": ["maven/*.xml", "*.sh"],
                  "scoring_service": ["*.yaml", "**/*.yaml"], "console": ["templates/*.html", "static/*"]},
    install_requires=requirements(),
    entry_points={"console_scripts": ["ccas=ccas.cli:main", "ccas-pipeline=pipeline.main:main"]},
    cmdclass={"build_py": BuildPyWithMigrations},
)
