"""PostgreSQL URLs: CCAS_DATABASE_URL is a libpq URL; Alembic and SQLAlchemy want their driver named."""

from __future__ import annotations

from urllib.parse import urlsplit

SCHEMES = ("postgresql", "postgres")


def check_database_url(url: str) -> str:
    if not url or urlsplit(url).scheme not in SCHEMES:
        raise ValueError("the database URL must be a postgresql:// URL (CCAS_DATABASE_URL)")
    return url


def sqlalchemy_url(url: str) -> str:
    """postgresql://… as SQLAlchemy's psycopg2 URL."""
    for prefix in ("postgresql+psycopg2://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    raise ValueError("the database URL must be a postgresql:// URL (CCAS_DATABASE_URL)")
