"""The console's PostgreSQL connections: a small thread-safe pool (FastAPI runs the page handlers on worker threads)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.extras
from psycopg2.pool import ThreadedConnectionPool

CONNECT_TIMEOUT_S = 5
# A page that cannot be answered in this time is a bug or a missing index, not something to wait for.
STATEMENT_TIMEOUT_MS = 10_000


class Database:
    def __init__(self, url: str, max_connections: int = 8) -> None:
        self._url = url
        self._max = max_connections
        self._pool: ThreadedConnectionPool | None = None

    def _get_pool(self) -> ThreadedConnectionPool:
        if self._pool is None:
            self._pool = ThreadedConnectionPool(1, self._max, self._url, connect_timeout=CONNECT_TIMEOUT_S,
                                                options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}")
        return self._pool

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A pooled connection; committed when the block succeeds, rolled back when it raises."""
        pool = self._get_pool()
        connection = pool.getconn()
        broken = False
        try:
            yield connection
            connection.commit()
        except psycopg2.OperationalError:
            broken = True
            raise
        except Exception:
            connection.rollback()
            raise
        finally:
            pool.putconn(connection, close=broken or connection.closed != 0)

    def rows(self, query: str, params: Any = None) -> list[dict[str, Any]]:
        with self.connection() as connection, connection.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor:
            cursor.execute(query, params)
            return [dict(row) for row in cursor.fetchall()]

    def row(self, query: str, params: Any = None) -> dict[str, Any] | None:
        found = self.rows(query, params)
        return found[0] if found else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.closeall()
            self._pool = None
