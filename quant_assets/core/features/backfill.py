"""Ingest a source and compute every feature family for a range of sessions, without Dagster.

For notebooks, tests and benchmarks: the same core calls the raw and feature assets make, with each
family's inputs read once for the whole range.
"""

from __future__ import annotations

from quant_assets.core import sessions
from quant_assets.core.features.library import FAMILIES
from quant_assets.core.features.materialize import materialize
from quant_assets.core.ingest.pipeline import ingest_alt, ingest_prices
from quant_assets.core.storage.fs import Location

PROVENANCE = {"producer": "backfill", "producer_version": "local", "run_id": "local"}


def backfill(root: Location, prices, alt, first, last, provenance: dict | None = None) -> Location:
    """Raw prices, alternative data and both feature families for every session in [first, last].

    ``prices`` and ``alt`` are source adapters (the synthetic market serves both). Every row written carries
    ``provenance`` (default: ``PROVENANCE``, the same on every call, so two backfills write the same bytes).
    """
    provenance = provenance or PROVENANCE
    days = sessions.sessions_between(first, last)
    for day in days:
        ingest_prices(prices, day, root, provenance=provenance)
        ingest_alt(alt, day, root, provenance=provenance)
    for family in FAMILIES.values():
        materialize(root, family, days, provenance, lookahead_sample=0, verify_sample=0)
    return root
