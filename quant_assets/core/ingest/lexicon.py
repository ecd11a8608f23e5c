"""A small finance-flavoured sentiment lexicon (no model download).

Positive and negative words drawn from common finance-sentiment word lists
(Loughran-McDonald style) plus trader shorthand seen on StockTwits/Twitter.
A tweet's score is (pos - neg) / (pos + neg), 0 when it has no lexicon word.
"""

from __future__ import annotations

from collections.abc import Iterable

POSITIVE = frozenset(
    """
    bull bullish buy buying bought long calls call up upside rally rallies rallying gain gains
    gained beat beats strong stronger strength surge surges surged soar soars soared jump jumps
    jumped rise rises rising rose high higher record outperform outperformed upgrade upgraded
    upgrades breakout profit profits profitable growth grow grows positive good great best
    boost boosted win winning wins winner moon rocket green recover recovery rebound optimistic
    """.split()
)

NEGATIVE = frozenset(
    """
    bear bearish sell selling sold short shorts puts put down downside drop drops dropped fall
    falls falling fell plunge plunged plunges crash crashed crashes loss losses lose losing lost
    miss missed misses weak weaker weakness low lower downgrade downgraded downgrades underperform
    decline declines declined negative bad worst worse cut cuts warning warns lawsuit fraud
    red slump slumps slumped risk risky fear fears concern concerns recall bankrupt bankruptcy
    """.split()
)


def score_tokens(tokens: Iterable[str]) -> tuple[int, int, float]:
    """(positive count, negative count, score in [-1, 1]) for a token list."""
    pos = neg = 0
    for token in tokens:
        word = token.lower()
        if word in POSITIVE:
            pos += 1
        elif word in NEGATIVE:
            neg += 1
    total = pos + neg
    return pos, neg, (pos - neg) / total if total else 0.0
