"""analyze(): the decision, its guards, degenerate input and the JSON shape."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from clickstats.stats.analysis import ExperimentResult, analyze
from clickstats.stats.compare import METHODS, Method
from clickstats.stats.multiple import CORRECTIONS
from clickstats.stats.summary import ExperimentSummary, RatioSummary, VariantSummary


def _variant(
    rng: np.random.Generator, name: str, users: int, ctr: float, abandon: float = 0.4
) -> VariantSummary:
    searches = np.ceil(rng.lognormal(1.0, 0.8, users))
    clicked = rng.binomial(searches.astype(np.int64), rng.beta(ctr * 20, (1 - ctr) * 20, users))
    with_results = searches - rng.binomial(searches.astype(np.int64), 0.05)
    abandoned = rng.binomial(with_results.astype(np.int64), abandon)
    metrics = {
        "search_ctr": RatioSummary.from_values(clicked, searches),
        "abandonment_rate": RatioSummary.from_values(abandoned, with_results),
        "zero_result_rate": RatioSummary.from_values(searches - with_results, searches),
    }
    return VariantSummary(name, users, metrics)


def _experiment(
    *variants: VariantSummary, weights: dict[str, float] | None = None
) -> ExperimentSummary:
    return ExperimentSummary(variants, weights or {v.name: 1.0 for v in variants}, experiment="x")


def _json(result: ExperimentResult) -> dict[str, Any]:
    text = json.dumps(result.to_dict(), allow_nan=False)  # JSON-ready: no NaN, no tuples
    out = json.loads(text)
    assert isinstance(out, dict)
    return out


@pytest.mark.parametrize("method", METHODS)
def test_a_significant_improvement_is_the_winner(method: Method) -> None:
    rng = np.random.default_rng(1)
    summary = _experiment(_variant(rng, "v1", 6000, 0.30), _variant(rng, "v2", 6000, 0.34))
    result = analyze(summary, method=method)
    assert result.decision.winner == "v2" and result.decision.leader == "v2"
    assert result.decision.summary.startswith("Ship v2: it raises search CTR from 29.8% to 34.2%")
    assert "95% CI" in result.decision.summary
    assert result.health is not None and result.health.passed
    v2 = result.variants[1].metrics["search_ctr"]
    assert v2.comparison is not None and v2.comparison.significant
    out = _json(result)
    assert out["decision"]["winner"] == "v2"
    ctr = out["variants"][1]["metrics"]["search_ctr"]
    assert set(ctr["comparison"]) >= {
        "absolute",
        "absolute_ci",
        "relative",
        "relative_ci",
        "p_value",
        "p_value_adjusted",
        "significant",
    }


def test_no_difference_names_the_leader_and_what_the_sample_can_detect() -> None:
    rng = np.random.default_rng(2)
    summary = _experiment(_variant(rng, "v1", 2000, 0.30), _variant(rng, "v2", 2000, 0.30))
    result = analyze(summary, method="fixed")
    assert result.decision.winner is None and result.decision.leader in ("v1", "v2")
    assert result.decision.summary.startswith("No significant difference in search CTR yet: v2")
    assert "would be detected reliably" in result.decision.summary
    assert result.health is not None
    power = result.health.power["v2"]
    assert power.relative_mde is not None and 0 < power.relative_mde < 0.2
    assert power.users_needed is not None and power.additional_users is not None


def test_sample_ratio_mismatch_blocks_a_winner() -> None:
    rng = np.random.default_rng(3)
    summary = _experiment(_variant(rng, "v1", 10_400, 0.30), _variant(rng, "v2", 9_600, 0.34))
    result = analyze(summary)
    assert result.health is not None and result.health.srm.flagged and not result.health.passed
    assert result.decision.winner is None
    assert result.decision.blocked_by == ("sample_ratio_mismatch",)
    assert "sample ratio mismatch" in result.decision.summary
    # The same counts under a 52/48 configuration are healthy.
    healthy = analyze(ExperimentSummary(summary.variants, {"v1": 52, "v2": 48}), method="fixed")
    assert healthy.decision.winner == "v2"


def test_no_verdict_below_the_minimum_sample() -> None:
    rng = np.random.default_rng(4)
    summary = _experiment(_variant(rng, "v1", 25, 0.1), _variant(rng, "v2", 25, 0.9))
    result = analyze(summary, method="fixed")
    assert result.decision.winner is None and result.decision.blocked_by == ("minimum_sample",)
    assert result.decision.summary.startswith("Too early to call: v1 has 25 users")
    assert "at least 30 users and 150 searches" in result.decision.summary


def test_an_implausible_lift_is_flagged_and_blocks_the_winner() -> None:
    rng = np.random.default_rng(5)
    summary = _experiment(_variant(rng, "v1", 3000, 0.20), _variant(rng, "v2", 3000, 0.32))
    result = analyze(summary)
    assert result.health is not None and result.health.implausible == ("v2",)
    assert result.decision.winner is None and result.decision.blocked_by == ("implausible_lift",)
    assert result.decision.summary.startswith("Check the tracking before acting: v2")


def test_a_significantly_worse_treatment_keeps_the_control() -> None:
    rng = np.random.default_rng(6)
    summary = _experiment(_variant(rng, "v1", 6000, 0.34), _variant(rng, "v2", 6000, 0.30))
    result = analyze(summary, method="fixed")
    assert result.decision.winner == "v1" and result.decision.leader == "v1"
    assert result.decision.summary.startswith("Keep v1: v2 is significantly worse")


def test_lower_is_better_for_abandonment() -> None:
    rng = np.random.default_rng(7)
    summary = _experiment(
        _variant(rng, "v1", 6000, 0.3, abandon=0.40), _variant(rng, "v2", 6000, 0.3, abandon=0.36)
    )
    result = analyze(summary, method="fixed", primary_metric="abandonment_rate")
    assert result.decision.winner == "v2"
    assert "it lowers abandonment rate from 39.9% to 36.2% (-9.3%" in result.decision.summary


def test_three_variants_are_corrected_with_holm_or_bh() -> None:
    rng = np.random.default_rng(8)
    variants = [_variant(rng, f"v{i}", 4000, ctr) for i, ctr in enumerate((0.30, 0.31, 0.32))]
    summary = _experiment(  # one metric: statsmodels' Holm runs a full gc.collect() per call
        *(
            VariantSummary(v.name, v.users, {"search_ctr": v.metrics["search_ctr"]})
            for v in variants
        )
    )
    for correction, name in CORRECTIONS.items():
        result = analyze(summary, method="fixed", correction=correction)
        comparisons = [v.metrics["search_ctr"].comparison for v in result.variants[1:]]
        raw = [c.p_value for c in comparisons if c is not None]
        adjusted = [c.p_value_adjusted for c in comparisons if c is not None]
        assert adjusted == multipletests(raw, method=name)[1].tolist()
        assert result.correction == correction


@pytest.mark.parametrize("method", METHODS)
def test_an_empty_arm_gives_reasons_not_exceptions(method: Method) -> None:
    rng = np.random.default_rng(9)
    empty = VariantSummary(
        "v2", 0, {m: RatioSummary(0, 0, 0, 0, 0, 0) for m in ("search_ctr", "abandonment_rate")}
    )
    result = analyze(_experiment(_variant(rng, "v1", 500, 0.3), empty), method=method)
    ctr = result.variants[1].metrics["search_ctr"]
    assert ctr.estimate is None and ctr.reason is not None
    # 500 users against 0 is itself a sample ratio mismatch: no decision, and no exception.
    assert result.decision.winner is None
    assert result.decision.blocked_by == ("sample_ratio_mismatch",)
    _json(result)


def test_an_empty_arm_without_a_configured_weight_is_named() -> None:
    rng = np.random.default_rng(12)
    empty = VariantSummary("v2", 0, {"search_ctr": RatioSummary(0, 0, 0, 0, 0, 0)})
    summary = ExperimentSummary((_variant(rng, "v1", 500, 0.3), empty), {"v1": 1.0})
    result = analyze(summary)
    assert result.health is not None and not result.health.srm.checked
    assert result.decision.summary.startswith("No verdict: v2 has no data yet;")
    assert result.decision.blocked_by == ("no_data",)
    assert result.health.sample.missing == ("v2",)
    ctr = result.variants[1].metrics["search_ctr"]
    assert ctr.comparison is not None and ctr.comparison.reason == (
        "v2 has 0 users: at least 2 are needed for a variance"
    )
    assert result.health.power == {"v2": result.health.power["v2"]}
    assert result.health.power["v2"].reason is not None
    _json(result)


def test_zero_variance_says_so() -> None:
    same = {"search_ctr": RatioSummary.from_values([1] * 200, [2] * 200)}
    summary = _experiment(VariantSummary("v1", 200, same), VariantSummary("v2", 200, same))
    result = analyze(summary)
    ctr = result.variants[1].metrics["search_ctr"]
    assert ctr.reason is not None and "zero variance" in ctr.reason
    assert result.decision.winner is None and "zero variance" in result.decision.summary
    assert result.health is not None and result.health.power["v2"].reason is not None
    _json(result)


def test_structural_problems_give_a_result_with_a_reason() -> None:
    rng = np.random.default_rng(10)
    v1 = _variant(rng, "v1", 300, 0.3)
    for summary, words in (
        (_experiment(v1), "1 variant with data: at least 2 are needed"),
        (_experiment(), "no variant has data yet"),
        (
            ExperimentSummary((v1, _variant(rng, "v2", 300, 0.3)), {}, control="v0"),
            "'v0' has no data",
        ),
    ):
        result = analyze(summary)
        assert result.reason is not None and words in result.reason
        assert result.decision.winner is None and result.decision.summary.startswith("No verdict")
        _json(result)
    result = analyze(_experiment(v1, _variant(rng, "v2", 300, 0.3)), primary_metric="revenue")
    assert result.reason == "no variant has the primary metric 'revenue'"
    assert result.variants and result.decision.winner is None


def test_a_configured_variant_without_users_is_a_mismatch() -> None:
    rng = np.random.default_rng(13)
    summary = ExperimentSummary(
        (_variant(rng, "v1", 3000, 0.3), _variant(rng, "v2", 3000, 0.3)),
        {"v1": 1.0, "v2": 1.0, "v3": 1.0},
    )
    result = analyze(summary)
    assert result.health is not None and result.health.srm.flagged
    assert result.health.srm.observed == {"v1": 3000, "v2": 3000, "v3": 0}


def test_missing_weights_skip_the_srm_check_with_a_reason() -> None:
    rng = np.random.default_rng(11)
    summary = ExperimentSummary(
        (_variant(rng, "v1", 3000, 0.3), _variant(rng, "v2", 3000, 0.3)), {"v1": 1.0}
    )
    result = analyze(summary)
    assert result.health is not None and not result.health.srm.checked
    assert "v2" in (result.health.srm.reason or "")


def test_arguments_outside_their_domain_raise() -> None:
    cases: list[dict[str, Any]] = [
        {"method": "bayes"},
        {"alpha": 0.0},
        {"correction": "bonferroni"},
        {"tuning": -1},
        {"power": 1.0},
    ]
    for kwargs in cases:
        name = next(iter(kwargs))
        with pytest.raises(ValueError, match=name):
            analyze(_experiment(), **kwargs)


def test_a_configured_variant_without_data_is_named_and_blocks() -> None:
    rng = np.random.default_rng(14)
    v1 = _variant(rng, "v1", 400, 0.3)
    only_control = ExperimentSummary((v1,), {"v1": 1.0, "v2": 1.0})
    result = analyze(only_control)
    assert result.decision.summary == (
        "No verdict: v2 has no data yet; check that its searches are logged with the variant "
        "the experiment assigned."
    )
    three = ExperimentSummary(
        (v1, _variant(rng, "v2", 400, 0.3)), {"v1": 1.0, "v2": 1.0, "v3": 1.0}
    )
    result = analyze(three, srm_threshold=1e-300)  # the missing arm is also an SRM; not here
    assert result.decision.blocked_by == ("no_data",)
    assert result.decision.summary.startswith("No verdict: v3 has no data yet")
    assert result.decision.winner is None


@pytest.mark.parametrize("zero_in", ["v1", "v2"])
def test_a_rate_of_zero_in_either_arm_is_a_tracking_problem(zero_in: str) -> None:
    rng = np.random.default_rng(15)
    arms = {name: _variant(rng, name, 800, 0.3) for name in ("v1", "v2")}
    searches = [float(s) for s in np.ceil(rng.lognormal(1.0, 0.8, 800))]
    zero = RatioSummary.from_values([0.0] * 800, searches)
    arms[zero_in] = VariantSummary(zero_in, 800, {**arms[zero_in].metrics, "search_ctr": zero})
    result = analyze(_experiment(arms["v1"], arms["v2"]))
    assert result.decision.winner is None
    assert result.decision.blocked_by == ("implausible_lift",)
    assert result.decision.summary.startswith("Check the tracking before acting: search CTR is ")
    assert f"a value of 0 in {zero_in}" in result.decision.summary
    assert result.health is not None and result.health.implausible == ("v2",)


def test_sentences_use_singular_and_plural_and_one_unit_per_interval() -> None:
    one_user = RatioSummary.from_values([1.0], [1.0])
    summary = _experiment(
        VariantSummary("v1", 1, {"search_ctr": one_user}),
        VariantSummary("v2", 1, {"search_ctr": one_user}),
    )
    text = analyze(summary).decision.summary
    assert "1 user and 1 search;" in text and "1 users" not in text and "1 searches" not in text
    assert "at least 30 users and 150 searches in every variant" in text
    rng = np.random.default_rng(16)
    result = analyze(_experiment(_variant(rng, "v1", 3000, 0.30), _variant(rng, "v2", 3000, 0.31)))
    # The point and the interval are both relative changes in percent: no raw differences.
    match = re.search(
        r"at ([+-][\d.]+%), 95% CI ([+-][\d.]+%) to ([+-][\d.]+%)", result.decision.summary
    )
    assert match is not None, result.decision.summary


def test_srm_and_minimum_sample_agree_on_the_smallest_verdict() -> None:
    # 30 users per variant is the floor for both: at exactly that size the split is checked.
    rng = np.random.default_rng(17)
    summary = _experiment(_variant(rng, "v1", 30, 0.3), _variant(rng, "v2", 30, 0.3))
    result = analyze(summary, min_denominator=1)
    assert result.health is not None
    assert result.health.sample.met and result.health.srm.checked
    smaller = _experiment(_variant(rng, "v1", 29, 0.3), _variant(rng, "v2", 29, 0.3))
    result = analyze(smaller, min_denominator=1)
    assert result.health is not None
    assert not result.health.sample.met and not result.health.srm.checked
