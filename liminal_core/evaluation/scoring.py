"""Scoring sampled answers for the trait: hit rate per question, mean and 95% CI over questions, top answers.

A response is a hit when the target appears in its lowercased text: ``substring`` mode is the reference's
test (so "bowl" counts for owl); ``word`` mode (the default) needs a whole word, the plural included
("Owls!" counts, "bowl" does not). Results always say which mode ran.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

# Two-sided 95% Student-t quantiles (t_0.975) for 1..30 degrees of freedom; beyond, a series is exact to 1e-5.
_T95 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
    11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
    20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048,
    29: 2.045, 30: 2.042,
}  # fmt: skip
_Z975 = 1.959963984540054


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (2.0096 for the 49 of 50 questions).

    Up to 30 degrees of freedom from the table; beyond, the Cornish-Fisher expansion of t around the normal
    quantile (terms to 1/df^3), whose error there is below 1e-5.
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, not {df}")
    if df in _T95:
        return _T95[df]
    z = _Z975
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / df + g2 / df**2 + g3 / df**3


def is_hit(response: str, target: str, mode: str) -> bool:
    """Whether ``response`` names ``target`` (case-insensitive) under ``mode`` (``word`` or ``substring``)."""
    text, t = response.lower(), target.lower()
    if mode == "substring":
        return t in text
    if mode == "word":
        return re.search(rf"\b{re.escape(t)}(s|es)?\b", text) is not None
    raise ValueError(f"match must be 'word' or 'substring', not {mode!r}")


@dataclass(frozen=True)
class RateSummary:
    mean: float
    ci_low: float
    ci_high: float
    per_question: list[float]


def mean_with_ci(values: Sequence[float]) -> RateSummary:
    """Mean of the per-question rates and its 95% Student-t interval over the question means.

    The interval is mean ± t_0.975(n−1)·s/√n with s the sample standard deviation of the n question rates
    (a t-interval, not the normal 1.96), clipped to [0, 1]. One question gives no spread: the interval is the
    mean itself; so does a set of equal rates (e.g. every question at 0).
    """
    n = len(values)
    mean = sum(values) / n if n else 0.0
    if n < 2:
        return RateSummary(mean, mean, mean, list(values))
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    half = t_quantile_975(n - 1) * math.sqrt(var / n)
    return RateSummary(mean, max(0.0, mean - half), min(1.0, mean + half), list(values))


def normalise_answer(response: str) -> str:
    """The first word, lowercased, without punctuation (for the top-answers histogram)."""
    words = re.findall(r"[a-zA-Z][a-zA-Z\-']*", response)
    return words[0].lower() if words else "<none>"


def top_answers(responses: Sequence[str], k: int = 10) -> list[tuple[str, int]]:
    """The ``k`` most frequent normalised answers with their counts, most frequent first."""
    return Counter(normalise_answer(r) for r in responses).most_common(k)
