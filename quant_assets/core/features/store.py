"""The point-in-time feature store over ``feature_events`` Parquet, queried with DuckDB.

Physical layout (the logical contract is the long ``feature_events`` schema):

    <root>/features/<family>/fv=<family version>/_manifest.json     {feature: version}
    <root>/features/<family>/fv=<family version>/date=D/part-<sha>.parquet
        entity_key, event_time, ingest_time, producer, producer_version, run_id, <one column per feature>

Point-in-time rule for a query (entity, as_of): among rows with
``event_time <= as_of AND ingest_time <= as_of`` take the latest event_time,
then the latest ingest_time. Because every row has ingest_time >= event_time
(enforced on write), that is the row with the lexicographically largest
(event_time, ingest_time) among those ingested by as_of. The query computes,
per entity in ingest order, the running best row (a window ``max``), keeps the
rows that are the best when they arrive, and answers every (entity, as_of)
pair with one DuckDB ASOF join on ingest_time: vectorised, no loop over dates.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from quant_assets.core import lake
from quant_assets.core.features.definitions import FeatureDef, FeatureFamily

PROVENANCE = ["producer", "producer_version", "run_id"]
KEY = ["entity_key", "event_time", "ingest_time"]
_TS = pa.timestamp("us", tz="UTC")


class FeatureStoreError(RuntimeError):
    pass


def family_dir(root: Path, family: FeatureFamily) -> Path:
    return Path(root) / "features" / family.name / f"fv={family.version}"


def _schema(family: FeatureFamily) -> pa.Schema:
    return pa.schema(
        [("entity_key", pa.string()), ("event_time", _TS), ("ingest_time", _TS)]
        + [(c, pa.string()) for c in PROVENANCE]
        + [(f.name, pa.float64()) for f in family.features]
    )


def _write_manifest(path: Path, family: FeatureFamily) -> None:
    manifest = path / "_manifest.json"
    if manifest.exists():
        return
    path.mkdir(parents=True, exist_ok=True)
    body = {
        "family": family.name,
        "family_version": family.version,
        "features": {f.name: f.version for f in family.features},
    }
    tmp = path / ".manifest.tmp"
    tmp.write_text(json.dumps(body, indent=2, sort_keys=True))
    tmp.replace(manifest)


def write_day(
    root: Path, family: FeatureFamily, day: dt.date, rows: pd.DataFrame, provenance: Mapping[str, str]
) -> lake.WriteResult:
    """Append the day's feature rows that are not stored yet; same key, other values is an error.

    Deterministic code under a fixed version must reproduce stored values; if
    it does not, something changed without a version bump, and we refuse.
    """
    if rows.empty:
        return lake.WriteResult(0, 0, None)
    if (rows["ingest_time"] < rows["event_time"]).any():
        raise FeatureStoreError(f"{family.name} {day}: a row has ingest_time before event_time")
    base = family_dir(root, family)
    _write_manifest(base, family)
    rows = rows.assign(**{k: provenance.get(k, "") for k in PROVENANCE})
    rows = lake.conform(rows, _schema(family))
    stored = lake.read_partition(base, "", day) if (base / f"date={day.isoformat()}").exists() else pd.DataFrame()
    fresh = rows
    if not stored.empty:
        features = [f.name for f in family.features]
        merged = rows.merge(stored[KEY + features], on=KEY, how="left", suffixes=("", "__old"), indicator=True)
        known = (merged["_merge"] == "both").to_numpy()
        old = merged.loc[known, [f"{c}__old" for c in features]].to_numpy()
        new = merged.loc[known, features].to_numpy()
        if not ((old == new) | (np.isnan(old) & np.isnan(new))).all():
            raise FeatureStoreError(
                f"{family.name} {day}: recomputed values differ from stored ones under the same version"
            )
        fresh = rows.loc[~known]
    if fresh.empty:
        return lake.WriteResult(len(rows), 0, None)
    table = lake.canonical_table(fresh, KEY, _schema(family))
    path = base / f"date={day.isoformat()}" / f"{lake.PART_PREFIX}{lake.table_digest(table)[:32]}.parquet"
    if not path.exists():
        lake.atomic_write_parquet(table, path)
    return lake.WriteResult(len(rows), len(fresh), path)


class FeatureStore:
    """Point-in-time reads over every stored feature version."""

    def __init__(self, root: Path, definitions: Mapping[str, FeatureDef]):
        self.root = Path(root)
        self.definitions = dict(definitions)

    # -- resolution -------------------------------------------------------------------------
    def _manifests(self) -> list[tuple[Path, dict]]:
        out = []
        for m in sorted((self.root / "features").glob("*/fv=*/_manifest.json")):
            out.append((m.parent, json.loads(m.read_text())))
        return out

    def resolve(self, feature: str) -> tuple[str, str]:
        """``name`` (the current definition's version) or ``name@version`` -> (name, version)."""
        if "@" in feature:
            name, version = feature.split("@", 1)
            return name, version
        if feature not in self.definitions:
            raise FeatureStoreError(f"unknown feature {feature!r}")
        return feature, self.definitions[feature].version

    def versions(self, name: str) -> list[str]:
        """Every stored version of a feature."""
        return sorted({m["features"][name] for _, m in self._manifests() if name in m["features"]})

    def _groups(self, features: Iterable[str]) -> dict[tuple[Path, ...], list[tuple[str, str]]]:
        """Requested features grouped by the set of family-version directories that hold them."""
        manifests = self._manifests()
        groups: dict[tuple[Path, ...], list[tuple[str, str]]] = defaultdict(list)
        for requested in features:
            name, version = self.resolve(requested)
            dirs = tuple(d for d, m in manifests if m["features"].get(name) == version)
            if not dirs:
                raise FeatureStoreError(f"no stored values for {name}@{version}")
            groups[dirs].append((name, requested))
        return groups

    # -- queries ----------------------------------------------------------------------------
    def get_point_in_time(
        self, entity_times: pd.DataFrame, features: list[str], since: dt.date | None = None
    ) -> pd.DataFrame:
        """For each (entity_key, as_of) row, the features as known at as_of: a wide frame in input order.

        ``since`` reads only partitions from that day on: a daily scorer that needs recent values passes it,
        so its cost does not grow with the history (older rows, restated or not, cannot be the answer
        once a newer event exists).
        """
        queries = pd.DataFrame(
            {
                "qid": np.arange(len(entity_times), dtype="int64"),
                "entity_key": entity_times["entity_key"].astype(str).to_numpy(),
                "as_of": pd.to_datetime(entity_times["as_of"], utc=True).astype("datetime64[us, UTC]").to_numpy(),
            }
        )
        result = entity_times[["entity_key", "as_of"]].reset_index(drop=True).copy()
        con = duckdb.connect()
        con.register("q", queries)
        for dirs, wanted in self._groups(features).items():
            files = [
                str(p)
                for d in dirs
                for p in sorted(d.glob(f"date=*/{lake.PART_PREFIX}*.parquet"))
                if since is None or p.parent.name[5:] >= since.isoformat()
            ]
            if not files:
                raise FeatureStoreError(f"no stored partitions since {since} for {[n for n, _ in wanted]}")
            cols = sorted({name for name, _ in wanted})
            select = ", ".join(f'"{c}"' for c in cols)
            answer = (
                con.sql(
                    f"""
                WITH f AS (
                    SELECT entity_key, event_time, ingest_time, {select}
                    FROM read_parquet(?, union_by_name = true)
                ),
                running AS (
                    SELECT *, max(event_time) OVER (
                        PARTITION BY entity_key ORDER BY ingest_time, event_time
                        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS best_event
                    FROM f
                ),
                candidates AS (
                    SELECT * EXCLUDE (best_event) FROM running
                    WHERE event_time = best_event
                    QUALIFY row_number() OVER (
                        PARTITION BY entity_key, ingest_time ORDER BY event_time DESC) = 1
                )
                SELECT q.qid, c.event_time AS __event_time, {", ".join(f'c."{c}"' for c in cols)}
                FROM q ASOF LEFT JOIN candidates c
                  ON q.entity_key = c.entity_key AND q.as_of >= c.ingest_time
                ORDER BY q.qid
                """,
                    params=[files],
                )
                .to_arrow_table()
                .to_pandas()
            )
            for name, requested in wanted:
                result[requested] = answer[name].to_numpy()
            family = dirs[0].parent.name
            result[f"event_time_{family}"] = answer["__event_time"].to_numpy()
        con.close()
        return result

    def get_latest(
        self, entity_keys: Iterable[str], features: list[str], as_of, since: dt.date | None = None
    ) -> pd.DataFrame:
        keys = list(entity_keys)
        frame = pd.DataFrame({"entity_key": keys, "as_of": [pd.Timestamp(as_of)] * len(keys)})
        return self.get_point_in_time(frame, features, since)

    def feature_events(self, family: str | None = None) -> pd.DataFrame:
        """The logical long ``feature_events`` view (for audits and tests; wide is for speed)."""
        frames = []
        for d, m in self._manifests():
            if family and m["family"] != family:
                continue
            files = sorted(d.glob(f"date=*/{lake.PART_PREFIX}*.parquet"))
            if not files:
                continue
            wide = pa.concat_tables([pq.read_table(f) for f in files], promote_options="default").to_pandas()
            long = wide.melt(id_vars=KEY + PROVENANCE, var_name="feature_name", value_name="value")
            long["feature_version"] = long["feature_name"].map(m["features"])
            frames.append(long)
        if not frames:
            return pd.DataFrame(
                columns=[
                    "entity_key",
                    "feature_name",
                    "feature_version",
                    "event_time",
                    "value",
                    "ingest_time",
                    *PROVENANCE,
                ]
            )
        out = pd.concat(frames, ignore_index=True)
        out = out.drop_duplicates(["entity_key", "feature_name", "feature_version", "event_time", "ingest_time"])
        return out[["entity_key", "feature_name", "feature_version", "event_time", "value", "ingest_time", *PROVENANCE]]
