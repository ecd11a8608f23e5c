"""The promotion decision: each challenger in shadow judged on a net-of-cost backtest beside the champion."""

import dagster as dg
import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.monitoring import history
from quant_assets.core.registry import champion, evidence, lineage, models, promotion
from quant_assets.core.trading import live
from quant_assets.defs.config import PromotionConfig
from quant_assets.defs.models import trained_model
from quant_assets.defs.resources import LakeResource, RegistryResource
from quant_assets.provenance import code_version

OWNERS = ["team:quant-research"]
CHECK = "champion_loads"


@dg.asset(
    group_name="models",
    owners=OWNERS,
    kinds={"python", "postgres"},
    deps=[trained_model],
    check_specs=[
        dg.AssetCheckSpec(
            CHECK,
            asset="promotion_decision",
            blocking=True,
            description="The champion after the decision loads, its artifact verified against the registry's "
            "SHA-256: nothing downstream (the champion's backtest) runs on a model that cannot trade.",
        )
    ],
    description="Judges every challenger in shadow (core/registry/promotion.py): scores the sessions it missed "
    "beside the champion, backtests both with the same rule and costs on the same out-of-sample sessions "
    "(walk-forward test folds plus the first shadow_sessions shadow sessions), and promotes it only if its net "
    "Sharpe beats the champion's by the margin, its deflated Sharpe given every challenger tried is above "
    "min_dsr and its turnover is under the cap; otherwise rejects it (retired) or, short of shadow sessions, "
    "waits. Recorded in quant.model_promotions with both models' numbers; effective from the session after the "
    "decision's information and after every session the live book already traded.",
)
def promotion_decision(
    context: dg.AssetExecutionContext, config: PromotionConfig, lake: LakeResource, registry: RegistryResource
) -> dg.MaterializeResult:
    portfolio, costs = config.parts()
    rows = []
    with registry.connect() as conn:
        for candidate in champion.shadows(conn, registry.name):
            rows.append(_decide(conn, context, lake, candidate, config.promotion_rule(), portfolio, costs))
            conn.commit()
        try:
            champ = champion.load(conn, registry.name)[0].node
            loads = dg.AssetCheckResult(check_name=CHECK, passed=True, metadata={"champion": champ})
        except LookupError as exc:
            champ, loads = "-", dg.AssetCheckResult(check_name=CHECK, passed=False, description=str(exc))
    for r in rows:
        context.log.info(f"{r['challenger']}: {r['decision']} ({r['reason']})")
    return dg.MaterializeResult(metadata=_metadata(rows, champ), check_results=[loads])


def _decide(conn, context, lake: LakeResource, candidate, rule, portfolio, costs) -> dict:
    """One challenger: its missed shadow sessions scored, the evidence gathered, the decision recorded (unless
    it waits). The decision's information reaches the champion's newest drift row (the sessions run so far)."""
    champs = models.champions(conn, candidate.name)
    snap = champion.snapshot_of(conn, lake.path, candidate)  # read and verified once for the whole decision
    as_of = sessions.as_date(snap.manifest["as_of"])
    through = max(history.last_date(conn, champs[0].node) or as_of, as_of) if champs else as_of
    missed = evidence.since_training(snap.manifest, through)
    stamp = lake.provenance("promotion_decision", context.run_id)
    scored = evidence.score_missing(conn, lake.path, lake.feature_store(), candidate, snap.manifest, missed, stamp)
    lineage.add_edges(conn, lineage.scoring_edges(candidate.node, code_version(lake.code_version), scored))
    ev = evidence.gather(conn, lake.path, candidate, snap, rule, portfolio, costs, through)
    decision, reason = promotion.judge(ev, rule, champs[0].version if champs else None)
    effective = None
    if decision != "waiting":
        decided_on = sessions.as_date(ev.decided_on)
        traded = live.last_session(conn)
        effective = sessions.next_session(max(decided_on, traded or decided_on))
        promotion.record(conn, candidate, decision, reason, as_of=decided_on, effective=effective,
                         evidence=ev.to_json(), actor=f"run:{context.run_id}")  # fmt: skip
    row = {"challenger": candidate.node, "decision": decision, "decided_on": ev.decided_on,
           "effective": effective.isoformat() if effective else None, "reason": reason}  # fmt: skip
    return row | _numbers(ev)


def _numbers(ev: promotion.Evidence) -> dict:
    sides = {"challenger": ev.challenger, "champion": ev.champion}
    out = {f"{k}_{m}": getattr(s, m) if s else None for k, s in sides.items() for m in ("net_sharpe", "turnover")}
    return out | {"champion": ev.champion.model if ev.champion else None, "dsr": ev.dsr, "sessions": ev.sessions}


def _metadata(rows: list[dict], champ: str) -> dict:
    """The decisions of this run, the latest one's numbers as numbers (charted across runs), and the champion."""
    meta = {
        "champion": dg.MetadataValue.text(champ),
        "decisions": dg.MetadataValue.md(
            pd.DataFrame(rows).round(4).to_markdown(index=False) if rows else "no challenger in shadow"
        ),
    }
    if rows:
        last = rows[-1]
        meta["decision"] = dg.MetadataValue.text(f"{last['challenger']}: {last['decision']}: {last['reason']}")
        for key in ("challenger_net_sharpe", "champion_net_sharpe", "challenger_turnover", "dsr"):
            if last[key] is not None and pd.notna(last[key]):
                meta[key] = dg.MetadataValue.float(float(last[key]))
    return meta
