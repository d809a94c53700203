"""Property: a verdict never contradicts itself.

For every metric, method (fixed, sequential), correction (Holm, BH) and 2-4 variants, on
thousands of random per-user data sets: `significant` <=> adjusted p < alpha <=> the absolute
interval excludes 0 <=> the relative interval excludes 0; and the decision sentence quotes an
interval that excludes 0 exactly when it calls the change significant.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clickstats.stats.analysis import analyze
from clickstats.stats.compare import Interval, excludes_zero
from clickstats.stats.summary import ExperimentSummary, RatioSummary, VariantSummary

CI = re.compile(r"CI ([+-]\d+(?:\.\d+)?)(?:%| pp)? to ([+-]\d+(?:\.\d+)?)")


@st.composite
def users(draw: st.DrawFn) -> tuple[int, int, float]:
    """One user: searches, searches with a click, a reciprocal-rank-like sum."""
    searches = draw(st.integers(0, 30))
    clicked = draw(st.integers(0, searches))
    rr = draw(st.floats(0, 1)) * clicked
    return searches, clicked, rr


@st.composite
def variant(draw: st.DrawFn, name: str) -> VariantSummary:
    rows = draw(st.lists(users(), min_size=5, max_size=80))
    searches = [float(s) for s, _, _ in rows]
    clicked = [float(c) for _, c, _ in rows]
    rr = [r for _, _, r in rows]
    metrics = {
        "search_ctr": RatioSummary.from_values(clicked, searches),
        "mrr": RatioSummary.from_values(rr, searches),
        "clicks_per_user": RatioSummary.from_values(clicked),
    }
    return VariantSummary(name, len(rows), metrics)


@st.composite
def experiments(draw: st.DrawFn) -> ExperimentSummary:
    k = draw(st.integers(2, 4))
    variants = tuple(draw(variant(f"v{i}")) for i in range(k))
    # Weights equal to the observed split: the sample ratio check passes, the verdict is reached.
    return ExperimentSummary(variants, {v.name: float(v.users) for v in variants}, "v0", "x")


def _printed(ci: Interval) -> bool:
    """Whether an interval printed as in the sentence reads as excluding 0."""
    low, high = (f"{bound:+.1%}" for bound in ci)
    return low[0] == high[0]


@settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    experiments(),
    st.sampled_from(["fixed", "sequential"]),
    st.sampled_from(["holm", "bh"]),
    st.sampled_from([0.01, 0.05, 0.1]),
    st.sampled_from(["search_ctr", "mrr", "clicks_per_user"]),
)
def test_significance_p_value_and_both_intervals_agree(
    summary: ExperimentSummary, method: str, correction: str, alpha: float, primary: str
) -> None:
    result = analyze(
        summary,
        method=method,  # type: ignore[arg-type]
        alpha=alpha,
        primary_metric=primary,
        correction=correction,  # type: ignore[arg-type]
        min_users=2,
        min_denominator=1,
        implausible_lift=float("inf"),
    )
    for v in result.variants:
        for m in v.metrics.values():
            c = m.comparison
            if c is None or c.p_value_adjusted is None:
                continue
            assert c.absolute_ci is not None
            assert c.significant == (c.p_value_adjusted < alpha)
            assert c.significant == excludes_zero(c.absolute_ci)
            if c.relative_ci is not None:  # None only when the control's value is 0
                assert c.significant == excludes_zero(c.relative_ci)
                assert c.significant == _printed(c.relative_ci)  # as the sentence prints it
    sentence = result.decision.summary
    quoted = CI.search(sentence)
    if sentence.startswith(("Ship", "Keep")):
        assert quoted is not None and quoted[1][0] == quoted[2][0], sentence
        assert "significant" in sentence
    elif sentence.startswith("No significant difference"):
        assert quoted is not None and quoted[1][0] != quoted[2][0], sentence
