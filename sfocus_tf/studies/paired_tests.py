"""An arm against the baseline, paired by seed: the tests a study table reports.

``paired_comparison`` takes the per-seed differences (arm minus baseline, same seed)
and gives their mean with its 95 % interval (Student's t), a two-sided paired t-test,
an exact two-sided Wilcoxon signed-rank test, and an equivalence test at ``margin``:
two one-sided t-tests (TOST), which declare the arm equivalent when the difference is
shown to lie inside ``(-margin, margin)``, i.e. when the 90 % interval does.

The Wilcoxon test is exact by enumeration of every sign assignment of the ranks (2^n:
64 for six seeds), so ties and zero differences are handled without a normal
approximation: zeros are dropped (Wilcoxon's convention), ties get average ranks.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import stats

# Above this many non-zero differences, 2^n sign assignments are too many to list.
EXACT_LIMIT = 20


def wilcoxon_exact(differences) -> float:
    """Two-sided exact p-value of the signed-rank statistic: the share of the 2^n sign
    assignments of the ranks whose positive rank sum is as far from its mean as the
    observed one. 1.0 when every difference is zero."""
    d = np.asarray(differences, np.float64)
    d = d[d != 0]
    n = len(d)
    if n == 0:
        return 1.0
    if n > EXACT_LIMIT:
        raise ValueError(f"{n} non-zero differences: the exact test enumerates 2^n "
                         f"assignments, at most {EXACT_LIMIT} here")
    ranks = stats.rankdata(np.abs(d))
    observed = ranks[d > 0].sum()
    centre = ranks.sum() / 2
    signs = np.array(list(itertools.product((0, 1), repeat=n)), np.float64)
    sums = signs @ ranks
    tolerance = 1e-9 * max(1.0, ranks.sum())
    return float(np.mean(np.abs(sums - centre) >= abs(observed - centre) - tolerance))


def paired_comparison(differences, margin: float, confidence: float = 0.95) -> dict:
    """The tests of one arm's per-seed differences (at least two), in the differences'
    unit; ``margin`` is the equivalence bound in the same unit."""
    d = np.asarray(differences, np.float64)
    n = len(d)
    if n < 2:
        raise ValueError(f"a paired comparison needs at least 2 seeds, got {n}")
    if margin <= 0:
        raise ValueError(f"the equivalence margin must be positive, got {margin}")
    mean, std = float(d.mean()), float(d.std(ddof=1))
    se, df = std / np.sqrt(n), n - 1
    half_width = float(stats.t.ppf(0.5 + confidence / 2, df) * se)
    if se > 0:
        t = mean / se
        p_t = float(2 * stats.t.sf(abs(t), df))
        # H0: mean <= -margin, and H0: mean >= margin; both rejected means equivalent
        p_tost = float(max(stats.t.sf((mean + margin) / se, df),
                           stats.t.cdf((mean - margin) / se, df)))
    else:  # identical differences: the mean is known exactly
        t = float(np.sign(mean) * np.inf) if mean else 0.0
        p_t = 0.0 if mean else 1.0
        p_tost = 0.0 if abs(mean) < margin else 1.0
    return {"n": n, "mean": mean, "std": std, "ci_low": mean - half_width,
            "ci_high": mean + half_width, "confidence": confidence, "t": float(t),
            "p_t": p_t, "p_wilcoxon": wilcoxon_exact(d), "margin": margin,
            "p_equivalence": p_tost, "equivalent": bool(p_tost < 1 - confidence),
            "higher_in": int(np.sum(d > 0))}
