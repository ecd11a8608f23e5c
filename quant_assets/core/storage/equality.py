"""When two stored values, rows or tables are the same: NaN equal to NaN, everywhere one rule.

A feature value that could not be computed is NaN, and recomputing it must give NaN again: a restated
value, a re-run of a day and a compacted copy are judged by these two functions, never by ``==``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def nan_equal(a, b) -> np.ndarray:
    """Element-wise equality of two float arrays of one shape, NaN equal to NaN."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return (x == y) | (np.isnan(x) & np.isnan(y))


def same_rows(a: pa.Table, b: pa.Table) -> bool:
    """Same schema, same values in the same order: nulls where nulls, floats bit for bit (NaN included).

    Stricter than ``nan_equal``: a copy of stored rows (a compacted part) must hold the very bits of the
    originals, so ``-0.0`` against ``0.0`` or another NaN payload is a difference here.
    """
    if a.schema.remove_metadata() != b.schema.remove_metadata() or a.num_rows != b.num_rows:
        return False
    for x, y in zip(a.columns, b.columns, strict=True):
        if not pc.equal(x.is_null(), y.is_null()).to_numpy(zero_copy_only=False).all():
            return False
        if pa.types.is_floating(x.type):
            bits = [pc.fill_null(c, 0).to_numpy().view(f"u{c.type.byte_width}") for c in (x, y)]
            if not np.array_equal(*bits):
                return False
        elif not x.equals(y):
            return False
    return True
