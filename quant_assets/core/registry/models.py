"""Model registry and lineage in Postgres (schema ``quant``, tables in core/storage/pg.py).

Lineage is a graph of edges ``src -> dst`` between typed node ids:
``source:<dataset>:<date>``, ``family:<name>@<version>``, ``feature:<name>@<version>``,
``snapshot:<fingerprint>``, ``code:<git sha>``, ``model:<name>:v<version>``,
``backtest:<id>``, ``drift:<id>``. Upstream and downstream walks are
recursive queries; the blast radius of a node is every model and backtest
downstream of it.

Promotion rule: a candidate becomes champion when its rank IC is positive
and at least the current champion's plus ``min_improvement``; otherwise it
is rejected. Both are scored on the same out-of-sample sessions when there
are enough of them (``core/registry/promotion.py``), else on their own walk-forward
test periods (the reason says which). Both decisions are recorded.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
from psycopg2.extras import execute_values

from quant_assets.core.registry.promotion import MIN_COMMON_DAYS, HeadToHead
from quant_assets.core.research.training import Ensemble, sha256
from quant_assets.core.storage import lake

PROMOTION_METRIC = "rank_ic"
_MODEL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


class ArtifactTampered(RuntimeError):
    pass


def check_model_name(name: str) -> str:
    """``name`` if it may name a model, else a ValueError saying what a name may hold.

    A model name becomes a directory under ``models/`` and the first part of ``name:vN``: letters, digits,
    ``_``, ``.`` and ``-``, starting with a letter, at most 64 characters, so no ``/``, ``..`` or ``:``.
    """
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
        raise ValueError(
            f"invalid model name {name!r}: use 1-64 letters, digits, '_', '.' or '-', starting with a letter "
            "(it becomes a directory and the first part of name:vN)"
        )
    return name


@dataclass(frozen=True)
class StoredFile:
    """A file a model owns, with the SHA-256 and size it must have when read back."""

    path: Path
    sha256: str
    size: int

    def read_bytes(self, owner: str) -> bytes:
        """The file's bytes, refused (ArtifactTampered naming the file) unless they hash as recorded."""
        try:
            blob = Path(self.path).read_bytes()
        except OSError as exc:
            raise ArtifactTampered(f"{owner}: {self.path} is unreadable: {exc}") from exc
        if len(blob) != self.size or sha256(blob) != self.sha256:
            raise ArtifactTampered(f"{owner}: {self.path} fails verification (sha256/size differ from the registry)")
        return blob


@dataclass(frozen=True)
class ModelFiles:
    """Every file a model owns: the artifact and its out-of-sample walk-forward predictions."""

    artifact: StoredFile
    oos: StoredFile


def save_model_files(root: Path, name: str, blob: bytes, oos: pd.DataFrame) -> ModelFiles:
    """Write a model's artifact (named by its SHA-256) and out-of-sample predictions (a content-addressed part)
    under ``models/<name>/``, each once, and return them as they now stand on disk.

    A file of the same name written earlier must hold the same content: the artifact is checked against
    its name, the predictions part against its content digest.
    """
    directory = lake.under(root, "models", check_model_name(name))
    artifact = StoredFile(directory / f"{sha256(blob)}.json", sha256(blob), len(blob))
    lake.write_once(artifact.path, lambda tmp: tmp.write_bytes(blob))
    artifact.read_bytes(f"model {name}")
    path = lake.write_part(directory / "oos", pa.Table.from_pandas(oos, preserve_index=False))
    lake.read_part(path)
    return ModelFiles(artifact, StoredFile(path, lake.file_sha256(path), path.stat().st_size))


@dataclass(frozen=True)
class ModelRef:
    model_id: int
    name: str
    version: int

    @property
    def node(self) -> str:
        return f"model:{self.name}:v{self.version}"


def register_model(
    conn,
    name: str,
    snapshot: str,
    features: dict[str, str],
    params: dict,
    code_version: str,
    dataset: tuple[str, str],
    files: ModelFiles,
    metrics: pd.DataFrame,
    orchestrator_run_id: str | None = None,
) -> ModelRef:
    """A new version of ``name`` with its training run, metrics, the checksums of its files, and lineage."""
    check_model_name(name)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"model:{name}",))
        cur.execute("SELECT coalesce(max(version), 0) + 1 FROM quant.models WHERE name = %s", (name,))
        version = cur.fetchone()[0]
        cur.execute(
            """INSERT INTO quant.models (name, version, snapshot, features, params, code_version)
               VALUES (%s, %s, %s, %s, %s, %s) RETURNING model_id""",
            (name, version, snapshot, json.dumps(features), json.dumps(params, default=str), code_version),
        )
        model_id = cur.fetchone()[0]
        cur.execute(
            """INSERT INTO quant.model_training_runs (model_id, params, dataset_start, dataset_end,
               orchestrator_run_id) VALUES (%s, %s, %s, %s, %s)""",
            (model_id, json.dumps(params, default=str), dataset[0], dataset[1], orchestrator_run_id),
        )
        art, oos = files.artifact, files.oos
        cur.execute(
            """INSERT INTO quant.model_artifacts (model_id, path, sha256, size_bytes, oos_path, oos_sha256,
               oos_size_bytes) VALUES (%s, %s, %s, %s, %s, %s, %s)""",
            (model_id, str(art.path), art.sha256, art.size, str(oos.path), oos.sha256, oos.size),
        )
    ref = ModelRef(model_id, name, version)
    record_metrics(conn, ref, metrics)
    add_edges(conn, [(f"snapshot:{snapshot}", ref.node), (f"code:{code_version}", ref.node)])
    return ref


def snapshot_edges(
    manifest: dict, feature_family: dict[str, str], source_windows: dict[str, tuple[list[str], str]]
) -> list[tuple[str, str]]:
    """Edges source partitions -> feature family -> feature versions -> snapshot, plus code versions.

    ``feature_family`` maps a feature name to its family version ("price@abc");
    ``source_windows`` maps a family version to (raw partitions it read, their dataset).
    """
    snap = f"snapshot:{manifest['fingerprint']}"
    edges = [(f"code:{manifest['code_version']}", snap)]
    for name, version in manifest["features"].items():
        feature = f"feature:{name}@{version}"
        edges += [(feature, snap), (f"family:{feature_family[name]}", feature)]
    for fam, (partitions, dataset) in source_windows.items():
        edges += [(f"source:{dataset}:{d}", f"family:{fam}") for d in partitions]
        edges += [(f"code:{v}", f"family:{fam}") for v in manifest.get("producer_versions", {}).get(fam, [])]
    return edges


def record_metrics(conn, ref: ModelRef, metrics: pd.DataFrame) -> None:
    """Upsert rows of (dataset_type, metric, scope, value)."""
    rows = [
        (ref.model_id, r.dataset_type, r.metric, str(r.scope), None if pd.isna(r.value) else float(r.value))
        for r in metrics.itertuples()
    ]
    with conn.cursor() as cur:
        execute_values(
            cur,
            """INSERT INTO quant.model_metrics (model_id, dataset_type, metric, scope, value) VALUES %s
               ON CONFLICT (model_id, dataset_type, metric, scope) DO UPDATE SET value = EXCLUDED.value""",
            rows,
        )


def record_backtest(
    conn, backtest_id: str, kind: str, snapshot: str, config: dict, metrics: dict, model: ModelRef | None = None
) -> str:
    """Upsert a backtest or sweep result and its lineage (snapshot and model -> backtest); returns its node."""
    node = f"backtest:{backtest_id}"
    with conn.cursor() as cur:
        cur.execute(
            """INSERT INTO quant.backtests (backtest_id, kind, model_id, snapshot, config, metrics)
               VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT (backtest_id) DO UPDATE SET metrics = EXCLUDED.metrics, created_at = now()""",
            (
                backtest_id,
                kind,
                model.model_id if model else None,
                snapshot,
                json.dumps(config),
                json.dumps(metrics, default=float),
            ),
        )
    add_edges(conn, [(f"snapshot:{snapshot}", node)] + ([(model.node, node)] if model else []))
    return node


def add_edges(conn, edges) -> None:
    with conn.cursor() as cur:
        execute_values(cur, "INSERT INTO quant.lineage_edges (src, dst) VALUES %s ON CONFLICT DO NOTHING", list(edges))


def upstream(conn, node: str) -> pd.DataFrame:
    """Every edge on a path into ``node``: (src, dst, depth)."""
    return _walk(conn, node, "dst", "src")


def downstream(conn, node: str) -> pd.DataFrame:
    """Every edge on a path out of ``node``: (src, dst, depth)."""
    return _walk(conn, node, "src", "dst")


def _walk(conn, node: str, here: str, there: str) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(
            f"""WITH RECURSIVE walk(src, dst, depth) AS (
                    SELECT src, dst, 1 FROM quant.lineage_edges WHERE {here} = %s
                    UNION
                    SELECT e.src, e.dst, w.depth + 1 FROM quant.lineage_edges e
                    JOIN walk w ON e.{here} = w.{there} WHERE w.depth < 20)
                SELECT src, dst, min(depth) AS depth FROM walk GROUP BY src, dst ORDER BY depth, src, dst""",
            (node,),
        )
        return pd.DataFrame(cur.fetchall(), columns=["src", "dst", "depth"])


def node_exists(conn, node: str) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT EXISTS (SELECT 1 FROM quant.lineage_edges WHERE src = %s OR dst = %s)", (node, node))
        return cur.fetchone()[0]


def blast_radius(conn, node: str) -> list[str]:
    """Models and backtests that used ``node`` (a feature version, snapshot, source partition or code version)."""
    nodes = set(downstream(conn, node)["dst"])
    return sorted(n for n in nodes if n.startswith(("model:", "backtest:")))


def model(conn, spec: str) -> ModelRef:
    """``name`` (latest version) or ``name:vN``."""
    name, sep, version = spec.partition(":v")
    check_model_name(name)
    if sep and not version.isdigit():
        raise ValueError(f"invalid model version in {spec!r}: expected name:vN with N a number")
    with conn.cursor() as cur:
        if version:
            cur.execute(
                "SELECT model_id, name, version FROM quant.models WHERE name = %s AND version = %s",
                (name, int(version)),
            )
        else:
            cur.execute(
                "SELECT model_id, name, version FROM quant.models WHERE name = %s ORDER BY version DESC LIMIT 1",
                (name,),
            )
        row = cur.fetchone()
    if row is None:
        raise LookupError(f"no model {spec!r} in the registry")
    return ModelRef(*row)


def metric(conn, ref: ModelRef, name: str = PROMOTION_METRIC, dataset_type: str = "test") -> float | None:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT value FROM quant.model_metrics WHERE model_id = %s AND dataset_type = %s "
            "AND metric = %s AND scope = 'overall'",
            (ref.model_id, dataset_type, name),
        )
        row = cur.fetchone()
    return None if row is None else row[0]


def best_model(conn, name: str, metric_name: str = PROMOTION_METRIC, dataset_type: str = "test") -> ModelRef | None:
    with conn.cursor() as cur:
        cur.execute(
            """SELECT m.model_id, m.name, m.version FROM quant.models m
               JOIN quant.model_metrics x ON x.model_id = m.model_id
               WHERE m.name = %s AND x.dataset_type = %s AND x.metric = %s AND x.scope = 'overall'
                 AND x.value IS NOT NULL
               ORDER BY x.value DESC, m.version DESC LIMIT 1""",
            (name, dataset_type, metric_name),
        )
        row = cur.fetchone()
    return None if row is None else ModelRef(*row)


def champions(conn, name: str) -> list[ModelRef]:
    """The champion first, then earlier champions, most recent first (the fallback order)."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT m.model_id, m.name, m.version FROM quant.model_promotions p
               JOIN quant.models m ON m.model_id = p.model_id
               WHERE p.name = %s AND p.decision = 'promoted'
               ORDER BY p.promotion_id DESC""",
            (name,),
        )
        seen, out = set(), []
        for row in cur.fetchall():
            if row[0] not in seen:
                seen.add(row[0])
                out.append(ModelRef(*row))
    return out


def decide_promotion(
    conn, candidate: ModelRef, min_improvement: float = 0.0, comparison: HeadToHead | None = None
) -> tuple[str, str]:
    """Apply the promotion rule, record the decision, return (decision, reason)."""
    current = champions(conn, candidate.name)
    incumbent = current[0] if current else None
    label = f"test {PROMOTION_METRIC}"
    if incumbent is not None and comparison is not None and comparison.days >= MIN_COMMON_DAYS:
        score, incumbent_score = comparison.challenger_rank_ic, comparison.champion_rank_ic
        basis, label = comparison.describe(), "rank IC"
    else:
        score = metric(conn, candidate)
        incumbent_score = metric(conn, incumbent) if incumbent else None
        basis = None
        if incumbent is not None and comparison is not None:
            basis = f"only {comparison.days} common out-of-sample sessions (< {MIN_COMMON_DAYS}): own test periods"
    if score is None or not score > 0:
        shown = "missing" if score is None else f"{score:.4f}"
        decision, reason = "rejected", f"{label} {shown} is not positive"
    elif incumbent_score is not None and score < incumbent_score + min_improvement:
        decision, reason = (
            "rejected",
            f"{label} {score:.4f} < champion v{incumbent.version} {incumbent_score:.4f} + {min_improvement}",
        )
    else:
        decision = "promoted"
        reason = f"{label} {score:.4f}" + (
            f" beats champion v{incumbent.version} {incumbent_score:.4f} + {min_improvement}"
            if incumbent
            else ", first champion"
        )
    if basis:
        reason = f"{reason} ({basis})"
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO quant.model_promotions (name, model_id, decision, reason) VALUES (%s, %s, %s, %s)",
            (candidate.name, candidate.model_id, decision, reason),
        )
        if decision == "promoted":
            cur.execute(
                "UPDATE quant.models SET status = 'retired' WHERE name = %s AND status = 'champion'", (candidate.name,)
            )
        cur.execute(
            "UPDATE quant.models SET status = %s WHERE model_id = %s",
            ("champion" if decision == "promoted" else "rejected", candidate.model_id),
        )
    return decision, reason


def model_files(conn, ref: ModelRef) -> tuple[Path, str]:
    """(artifact path, training snapshot fingerprint) of a registered model."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT a.path, m.snapshot FROM quant.models m JOIN quant.model_artifacts a USING (model_id) "
            "WHERE model_id = %s",
            (ref.model_id,),
        )
        row = cur.fetchone()
    if row is None:
        raise ArtifactTampered(f"{ref.node} has no registered artifact")
    return Path(row[0]), row[1]


def _stored_files(conn, ref: ModelRef) -> tuple[StoredFile, StoredFile | None]:
    """The recorded artifact and out-of-sample predictions of a model (None: registered before they were)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT path, sha256, size_bytes, oos_path, oos_sha256, oos_size_bytes FROM quant.model_artifacts "
            "WHERE model_id = %s",
            (ref.model_id,),
        )
        row = cur.fetchone()
    if row is None:
        raise ArtifactTampered(f"{ref.node} has no registered artifact")
    oos = StoredFile(Path(row[3]), row[4], row[5]) if row[3] is not None else None
    return StoredFile(Path(row[0]), row[1], row[2]), oos


def load_model(conn, ref: ModelRef) -> Ensemble:
    """Load a model's artifact, refusing it when its size or SHA-256 differs from the registry's."""
    return Ensemble.from_bytes(_stored_files(conn, ref)[0].read_bytes(ref.node))


def load_oos(conn, ref: ModelRef) -> pd.DataFrame | None:
    """A model's out-of-sample walk-forward predictions, verified against their recorded hash (ArtifactTampered
    naming the file otherwise); None for a model registered before they were recorded."""
    oos = _stored_files(conn, ref)[1]
    if oos is None:
        return None
    return lake.read_parquet(oos.path, source=pa.BufferReader(oos.read_bytes(ref.node))).to_pandas()


def verify_models(conn) -> list[tuple[str, Path, str | None]]:
    """Every file of every registered model against its recorded hash: (model node, path, error or None)."""
    with conn.cursor() as cur:
        cur.execute("SELECT model_id, name, version FROM quant.models ORDER BY model_id")
        refs = [ModelRef(*row) for row in cur.fetchall()]
    out = []
    for ref in refs:
        try:
            stored = [f for f in _stored_files(conn, ref) if f is not None]
        except ArtifactTampered as exc:
            out.append((ref.node, Path("-"), str(exc)))
            continue
        for f in stored:
            try:
                f.read_bytes(ref.node)
                out.append((ref.node, f.path, None))
            except ArtifactTampered as exc:
                out.append((ref.node, f.path, str(exc)))
    return out
