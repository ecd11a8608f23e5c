"""Connections to the Postgres that holds the ``quant`` schema (its tables: core.schema.migrate)."""

from __future__ import annotations

from contextlib import contextmanager

import psycopg2


def libpq(url: str) -> str:
    """Strip a SQLAlchemy driver suffix (postgresql+psycopg2://) for psycopg2.connect."""
    scheme, sep, rest = url.partition("://")
    return f"postgresql://{rest}" if sep and scheme.startswith("postgres") else url


@contextmanager
def connect(url: str):
    """A connection; commits on success, rolls back on error. It runs no DDL: the schema is core.schema.migrate's."""
    conn = psycopg2.connect(libpq(url))
    try:
        yield conn
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    finally:
        conn.close()
