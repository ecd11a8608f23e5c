"""An independent PSI for the monitoring tests: tie-aware cut points by a plain-Python walk and shares by pandas.cut,
to check ``drift.PsiReference`` against another route."""

import numpy as np
import pandas as pd


def tie_aware_bins_independent(reference: np.ndarray, bins: int = 10) -> list[float]:
    """The tie-aware cut points by another route: a walk over the sorted values in plain Python."""
    values = sorted(float(v) for v in reference if np.isfinite(v))
    groups: list[list] = []  # [first, last, count] of each run of equal values (to 1e-12, relative)
    for v in values:
        if groups and v - groups[-1][1] <= 1e-12 * max(abs(v), abs(groups[-1][1])):
            groups[-1][1], groups[-1][2] = v, groups[-1][2] + 1
        else:
            groups.append([v, v, 1])
    m = len(values)
    atom = [g[2] * 2 * bins >= m for g in groups]
    ends = set()  # index of the group a bin ends at
    i = 0
    while i < len(groups):
        if atom[i]:
            ends.add(i)
            i += 1
            continue
        j = i
        while j < len(groups) and not atom[j]:
            j += 1
        total = sum(g[2] for g in groups[i:j])
        k, level, seen = max(1, round(bins * total / m)), 1, 0
        for g in range(i, j):
            seen += groups[g][2]
            while level < k and seen >= total * level / k:
                ends.add(g)
                level += 1
        ends.add(j - 1)
        i = j
    return [(groups[e][1] + groups[e + 1][0]) / 2 for e in sorted(ends) if e + 1 < len(groups)]


def psi_independent(reference, actual, right: bool | None, cuts: list[float] | None = None) -> float:
    """PSI over the independent tie-aware bins (``cuts``, if already computed) with pandas.cut, closed on the
    right, the left, or (None) the mean of both shares (a value on a cut counts half on each side), shares
    clipped at 1e-4."""
    reference, actual = np.asarray(reference, dtype=float), np.asarray(actual, dtype=float)
    edges = [-np.inf, *(tie_aware_bins_independent(reference) if cuts is None else cuts), np.inf]

    def shares(x, closed_right):
        x = pd.Series(x[np.isfinite(x)])
        return pd.cut(x, edges, right=closed_right).value_counts(normalize=True, sort=False).to_numpy()

    e = shares(reference, True)
    a = (shares(actual, True) + shares(actual, False)) / 2 if right is None else shares(actual, right)
    e, a = np.clip(e, 1e-4, None), np.clip(a, 1e-4, None)
    return float(((a - e) * np.log(a / e)).sum())
