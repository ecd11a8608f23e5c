"""The feature catalog in Postgres: every feature definition ever registered (``quant.feature_definitions``)."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from quant_assets.core.features.definitions import FeatureDef

# Created by core.schema.migrate; old versions of a feature stay registered beside the new ones.
TABLES = """
CREATE TABLE IF NOT EXISTS quant.feature_definitions (
    name          text NOT NULL,
    version       text NOT NULL,
    family        text NOT NULL,
    inputs        text[] NOT NULL,
    depends_on    text[] NOT NULL,
    lookback      integer NOT NULL,
    lag_seconds   integer NOT NULL,
    description   text NOT NULL,
    owner         text NOT NULL,
    code_version  text NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);
"""


def register_features(conn, features: Iterable[FeatureDef], code_version: str) -> int:
    """Insert definitions not yet registered; returns how many were new."""
    rows = [
        (
            f.name,
            f.version,
            f.family,
            list(f.inputs),
            [d.key for d in f.depends_on],
            f.lookback,
            int(f.lag.total_seconds()),
            f.description,
            f.owner,
            code_version,
        )
        for f in features
    ]
    with conn.cursor() as cur:
        new = 0
        for row in rows:
            cur.execute(
                """INSERT INTO quant.feature_definitions
                   (name, version, family, inputs, depends_on, lookback, lag_seconds, description, owner,
                    code_version)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (name, version) DO NOTHING""",
                row,
            )
            new += cur.rowcount
    return new


def feature_catalog(conn) -> pd.DataFrame:
    """Every registered (name, version), old versions included: what the lake's feature files may refer to."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT name, version, family, inputs, depends_on, lookback, lag_seconds, description, owner,
                      code_version, registered_at
               FROM quant.feature_definitions ORDER BY family, name, registered_at"""
        )
        cols = [c.name for c in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=cols)
