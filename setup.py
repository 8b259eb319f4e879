"""CCAS — Call Center Agent Scoring: a Beam streaming pipeline that scores agents from their call recordings."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent


def requirements() -> list[str]:
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith(("#", "-"))]


setup(
    name="ccas",
    version="0.1.0",
    description="Call Center Agent Scoring: Avaya recordings -> Kafka -> Apache Beam -> S3, scoring, PostgreSQL",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["ccas*", "pipeline*", "avaya_source*", "scoring_service*", "schemas*", "callgen*"]),
    package_data={"schemas": ["*.json", "*.yaml"], "ccas.stack": ["maven/*.xml"], "scoring_service": ["*.yaml", "**/*.yaml"]},
    py_modules=["run_pipeline"],
    install_requires=requirements(),
    entry_points={"console_scripts": ["ccas=ccas.cli:main"]},
)
