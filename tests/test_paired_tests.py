"""The study's paired tests against SciPy's own routines and cases worked by hand."""

import itertools

import numpy as np
import pytest
from scipy import stats

from sfocus_tf.studies import paired_tests


def test_t_test_and_interval_match_scipy(rng):
    arm, baseline = rng.normal(0.86, 0.004, 6), rng.normal(0.858, 0.004, 6)
    got = paired_tests.paired_comparison(arm - baseline, margin=0.005)
    reference = stats.ttest_rel(arm, baseline)
    assert got["t"] == pytest.approx(reference.statistic)
    assert got["p_t"] == pytest.approx(reference.pvalue)
    low, high = stats.ttest_1samp(arm - baseline, 0.0).confidence_interval(0.95)
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((low, high))
    assert got["n"] == 6 and got["higher_in"] == int(np.sum(arm > baseline))


def test_exact_wilcoxon_matches_scipy_without_ties(rng):
    for n in (3, 5, 6, 8):
        d = rng.normal(0.1, 1.0, n)
        assert paired_tests.wilcoxon_exact(d) == pytest.approx(
            stats.wilcoxon(d, method="exact").pvalue)


def test_exact_wilcoxon_by_hand():
    # all six positive: only "all +" and "all -" are as extreme, 2 of 64
    assert paired_tests.wilcoxon_exact([1, 2, 3, 4, 5, 6]) == pytest.approx(2 / 64)
    # zeros are dropped: the same as the four non-zero differences, 2 of 16
    assert paired_tests.wilcoxon_exact([0, 0.5, 0.7, 0.1, 0.3, 0]) == pytest.approx(2 / 16)
    assert paired_tests.wilcoxon_exact([0, 0, 0]) == 1.0
    # ties: |d| ranks 1.5, 1.5, 3.5, 3.5; W+ = 8.5 is 3.5 from its mean 5; of the 16
    # sign assignments those with W+ in {0, 1.5, 8.5, 10} (and none between) reach it
    ranks = np.array([1.5, 1.5, 3.5, 3.5])
    sums = [ranks[list(bits)].sum() for r in range(5)
            for bits in itertools.combinations(range(4), r)]
    expected = np.mean([abs(s - 5) >= 3.5 for s in sums])
    assert paired_tests.wilcoxon_exact([1, -1, 2, 2]) == pytest.approx(expected)


def test_equivalence_is_the_90_percent_interval_inside_the_margin(rng):
    decisions = set()
    for _ in range(40):
        d = rng.normal(rng.uniform(-0.006, 0.006), rng.uniform(0.001, 0.006), 6)
        got = paired_tests.paired_comparison(d, margin=0.005)
        low, high = stats.ttest_1samp(d, 0.0).confidence_interval(0.90)
        assert got["equivalent"] == (-0.005 < low and high < 0.005)
        decisions.add(got["equivalent"])
    assert decisions == {True, False}  # both outcomes were exercised


def test_identical_differences_and_bad_input():
    same = paired_tests.paired_comparison([0.002] * 4, margin=0.005)
    assert same["p_t"] == 0.0 and same["equivalent"] and same["ci_low"] == same["ci_high"]
    with pytest.raises(ValueError, match="at least 2 seeds, got 1"):
        paired_tests.paired_comparison([0.01], margin=0.005)
    with pytest.raises(ValueError, match="margin must be positive"):
        paired_tests.paired_comparison([0.01, 0.02], margin=0.0)
    with pytest.raises(ValueError, match="21 non-zero differences"):
        paired_tests.wilcoxon_exact(np.arange(1, 22))
