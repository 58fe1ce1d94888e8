"""The studies' statistical test against independent references: Welch's t-test and TOST against
scipy.stats.ttest_ind(equal_var=False), the t tail and the incomplete beta function against scipy, Holm's
correction against a worked example by hand; the verdicts and standings the corrected p-values give; the
committed studies' tables re-derived from their per-seed records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import special
from scipy import stats as sp

from hybridvision.study.aggregate import judge, standing, verdict
from hybridvision.study.config import PointConfig, StudyConfig
from hybridvision.study.stats import betainc, holm, pooled_sd, t_sf, welch

ROOT = Path(__file__).resolve().parents[1]

# Known samples (top-1 % over seeds, the shapes the studies have: n = 3 and 5, unequal spreads).
SAMPLES = [
    ([90.75, 91.08, 91.11], [90.93, 90.91, 90.97]),
    ([88.12, 88.80, 88.51], [90.93, 90.91, 90.97]),
    ([91.18, 91.48, 90.89, 91.02, 91.30], [90.93, 90.91, 90.97, 90.70, 91.12]),
    ([83.63, 83.91, 84.02], [86.13, 86.42, 85.98]),
    ([1.0, 2.0], [1.5, 2.5, 3.5, 10.0]),
]


@pytest.mark.parametrize("a, b", SAMPLES)
def test_welch_matches_scipy(a, b):
    ours = welch(a, b, margin=0.5)
    ref = sp.ttest_ind(a, b, equal_var=False)
    assert ours.t == pytest.approx(ref.statistic, rel=1e-10)
    assert ours.p == pytest.approx(ref.pvalue, rel=1e-8)
    assert ours.df == pytest.approx(ref.df, rel=1e-10)
    assert ours.diff == pytest.approx(np.mean(a) - np.mean(b))


@pytest.mark.parametrize("a, b", SAMPLES)
@pytest.mark.parametrize("margin", [0.1, 0.5, 3.0])
def test_tost_is_the_larger_of_two_one_sided_welch_tests(a, b, margin):
    """TOST: H0 diff <= -margin (test a against b - margin, 'greater') and H0 diff >= margin (a against
    b + margin, 'less'); its p is the larger one-sided p."""
    low = sp.ttest_ind(a, np.asarray(b) - margin, equal_var=False, alternative="greater").pvalue
    high = sp.ttest_ind(a, np.asarray(b) + margin, equal_var=False, alternative="less").pvalue
    assert welch(a, b, margin).p_tost == pytest.approx(max(low, high), rel=1e-8, abs=1e-14)


def test_the_t_tail_and_the_incomplete_beta_match_scipy():
    for df in (0.7, 1.0, 2.04, 3.96, 8.0, 30.0, 1e4):
        for t in (-40.0, -2.5, -0.3, 0.0, 0.1, 1.96, 12.4, 60.0):
            assert t_sf(t, df) == pytest.approx(sp.t.sf(t, df), rel=1e-9, abs=1e-300), (t, df)
    for a, b, x in ((0.5, 0.5, 0.3), (1.02, 0.5, 0.01), (2.0, 0.5, 0.99), (50.0, 0.5, 0.9), (3.0, 7.0, 0.5)):
        assert betainc(a, b, x) == pytest.approx(special.betainc(a, b, x), rel=1e-10)
    assert t_sf(math.inf, 3.0) == 0.0 and t_sf(-math.inf, 3.0) == 1.0
    with pytest.raises(ValueError, match="0 <= x <= 1"):
        betainc(1.0, 1.0, 1.5)


def test_holm_on_a_worked_example():
    """Four p-values at alpha 0.05 (by hand): sorted 0.005, 0.01, 0.03, 0.04 are multiplied by 4, 3, 2, 1 ->
    0.02, 0.03, 0.06, 0.04, then made monotone -> 0.02, 0.03, 0.06, 0.06. Holm rejects the two smallest;
    uncorrected testing would reject all four."""
    p = [0.01, 0.04, 0.03, 0.005]
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [q < 0.05 for q in holm(p)] == [True, False, False, True]
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    adjusted = holm([0.02, math.nan, 0.01])  # a comparison without a test is not counted in the family
    assert math.isnan(adjusted[1]) and adjusted[0] == pytest.approx(0.02) and adjusted[2] == pytest.approx(0.02)


def test_no_spread_at_all_is_an_exact_difference():
    w = welch([1.0, 1.0], [1.0, 1.0], margin=0.5)
    assert w.p == 1.0 and w.p_tost == 0.0
    w = welch([2.0, 2.0], [1.0, 1.0], margin=0.5)
    assert w.p == 0.0 and w.p_tost == 1.0 and w.t == math.inf
    with pytest.raises(ValueError, match="at least 2 values"):
        welch([1.0], [1.0, 2.0], margin=0.5)


def test_pooled_sd():
    a, b = [1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0]
    expected = math.sqrt((2 * np.var(a, ddof=1) + 3 * np.var(b, ddof=1)) / 5)
    assert pooled_sd(a, b) == pytest.approx(expected)
    assert math.isnan(pooled_sd([1.0], b))


@pytest.mark.parametrize(
    "diff, p_holm, p_tost_holm, expected",
    [
        (0.6, 0.01, 0.9, "better"),
        (-0.6, 0.049, 0.9, "worse"),
        (0.05, 0.8, 0.01, "equivalent"),
        (0.05, 0.8, 0.2, "inconclusive"),
        (0.6, 0.05, 0.9, "inconclusive"),  # at alpha exactly: not rejected
        (0.05, 0.8, math.nan, "inconclusive"),  # no margin stated: never equivalent
        (math.nan, math.nan, math.nan, "n/a"),
    ],
)
def test_verdicts_from_the_corrected_p_values(diff, p_holm, p_tost_holm, expected):
    assert verdict(diff, p_holm, p_tost_holm, 0.05) == expected


@pytest.mark.parametrize(
    "accuracy, ratio, expected",
    [
        ("better", 1.0, "dominates"),
        ("better", 0.8, "trade-off: more accurate, slower"),
        ("worse", 0.95, "dominated"),
        ("worse", 1.3, "trade-off: faster, less accurate"),
        ("equivalent", 1.2, "dominates"),
        ("equivalent", 1.05, "equivalent"),
        ("equivalent", 0.8, "dominated"),
        ("inconclusive", 1.57, "inconclusive, faster"),
        ("inconclusive", 0.88, "inconclusive, slower"),
        ("inconclusive", 1.0, "inconclusive"),
    ],
)
def test_standing_uses_the_verdicts(accuracy, ratio, expected):
    assert standing(accuracy, ratio) == expected


def test_a_study_judges_every_comparison_in_one_holm_family():
    """Three comparisons (two against the baseline, one declared pair): the raw p-values are scipy's, the
    corrected ones Holm's over all three; a clear difference is called, a small one with a margin is
    equivalent, and without a margin the same small one is inconclusive."""
    points = tuple(PointConfig(label, "coatnet_test") for label in ("ref", "far", "near"))
    study = StudyConfig(name="s", points=points, equivalence_margin_pp=0.5, comparisons=(("far", "near"),))
    values = {
        "ref": [90.0, 90.1, 89.9, 90.05, 89.95],
        "far": [91.0, 91.1, 90.9, 91.05, 90.95],
        "near": [90.02, 90.12, 89.92, 90.07, 89.97],
    }
    out = judge(study, values)
    assert [(c["a"], c["b"]) for c in out] == [("far", "ref"), ("near", "ref"), ("far", "near")]
    raw = [sp.ttest_ind(values[c["a"]], values[c["b"]], equal_var=False).pvalue for c in out]
    assert [c["p"] for c in out] == pytest.approx(raw)
    assert [c["p_holm"] for c in out] == pytest.approx(holm(raw))
    assert [c["verdict"] for c in out] == ["better", "equivalent", "better"]
    no_margin = judge(StudyConfig(name="s", points=points, comparisons=(("far", "near"),)), values)
    assert [c["verdict"] for c in no_margin] == ["better", "inconclusive", "better"]
    with pytest.raises(ValueError, match=r"comparisons: \['far', 'far'\] must name two different points"):
        StudyConfig(name="s", points=points, comparisons=(("far", "far"),))


@pytest.mark.parametrize("name", ["study_ascan_layouts", "study_ascan_blocks", "study_families"])
def test_the_committed_tables_are_the_tests_of_their_records(name):
    """Each committed table's p-values and verdicts are scipy's Welch test on the per-seed records, Holm over
    the study's comparisons; the seed rule's list is what the first seeds give."""
    table = json.loads((ROOT / "results" / "study" / name / "table.json").read_text())
    records = ROOT / "results" / "study" / name / "runs"
    study, rows = table["study"], {r["label"]: r for r in table["rows"]}
    assert study["equivalence_margin_pp"] > 0 and study["alpha"] == 0.05
    top1 = {}
    for label, row in rows.items():
        same = next(p["same_runs_as"] for p in study["points"] if p["label"] == label)
        dirs = [Path(same.format(seed=s)) if same else records / f"{label}-s{s}" for s in row["seeds"]]
        top1[label] = [json.loads((ROOT / d / "summary.json").read_text())["top1"] for d in dirs]
        assert row["top1"] == top1[label]
    comps = table["comparisons"]
    raw = [sp.ttest_ind(top1[c["a"]], top1[c["b"]], equal_var=False).pvalue for c in comps]
    assert [c["p"] for c in comps] == pytest.approx(raw, rel=1e-8)
    assert [c["p_holm"] for c in comps] == pytest.approx(holm(raw), rel=1e-8)
    for c in comps:
        expected = verdict(c["diff"], c["p_holm"], c["p_tost_holm"], 0.05)
        assert c["verdict"] == expected
        first = len(study["seeds"])  # the rule reads the first seeds only
        a, b = top1[c["a"]][:first], top1[c["b"]][:first]
        close = abs(np.mean(a) - np.mean(b)) <= study["extra_seeds"]["within_sd"] * pooled_sd(a, b)
        assert c["close"] == close
    sent = {label for c in comps if c["close"] for label in (c["a"], c["b"])}
    assert set(table["extra_seeds"]) == sent
