"""The decision in words: winner, leader and one sentence a product manager can act on.

A winner is named only when every guard passes:
- the sample ratio check did not fire (`health.check_srm`);
- every variant has at least `MIN_USERS` users and `MIN_DENOMINATOR` units of the primary
  metric's denominator (150 searches for search CTR; GrowthBook's own floor is 150 events);
- no variant's relative change in the primary metric is `IMPLAUSIBLE_LIFT` (50%) or more either
  way: a ranking change rarely moves search CTR that much, a tracking bug often does;
and then the winner is the variant whose improvement over the control is significant (with the
multiple-comparison correction), the best one when several are; or the control, when every
other variant is significantly worse. The leader is simply the best point estimate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from clickstats.stats.compare import Comparison
from clickstats.stats.health import PowerEstimate, SrmCheck
from clickstats.stats.summary import MetricSpec, RatioSummary

MIN_USERS = 30
MIN_DENOMINATOR = 150
IMPLAUSIBLE_LIFT = 0.5


@dataclass(frozen=True, slots=True)
class SampleCheck:
    """Whether every variant reached the minimum sample for a verdict."""

    met: bool
    min_users: int
    min_denominator: float
    denominator: str
    short: tuple[str, ...] = ()  # the variants below the minimum
    reason: str | None = None


def check_sample(
    arms: Mapping[str, RatioSummary | None],
    *,
    denominator: str,
    min_users: int = MIN_USERS,
    min_denominator: float = MIN_DENOMINATOR,
) -> SampleCheck:
    """`arms` maps each variant to its summary of the primary metric (None when missing)."""
    short = tuple(
        name
        for name, s in arms.items()
        if s is None or s.users < min_users or s.sum_y < min_denominator
    )
    reason = None
    if short:
        parts = [
            "no data"
            if (s := arms[name]) is None
            else f"{s.users:,} users and {s.sum_y:,.0f} {denominator}"
            for name in short
        ]
        have = "; ".join(f"{name} has {part}" for name, part in zip(short, parts, strict=True))
        reason = (
            f"{have}; a verdict needs at least {min_users:,} users and "
            f"{min_denominator:,.0f} {denominator} in every variant"
        )
    return SampleCheck(not short, min_users, min_denominator, denominator, short, reason)


def implausible(
    comparisons: Mapping[str, Comparison], threshold: float = IMPLAUSIBLE_LIFT
) -> tuple[str, ...]:
    """The variants whose relative change is `threshold` or more in either direction."""
    return tuple(
        name
        for name, c in comparisons.items()
        if c.relative is not None and abs(c.relative) >= threshold
    )


@dataclass(frozen=True, slots=True)
class Decision:
    winner: str | None
    leader: str | None
    summary: str
    blocked_by: tuple[str, ...] = ()  # why a verdict was withheld


def _better(spec: MetricSpec, a: float, b: float) -> bool:
    return a > b if spec.higher_is_better else a < b


def _value(spec: MetricSpec, value: float) -> str:
    return f"{value:.1%}" if spec.percent else f"{value:.4g}"


def _lift(value: float) -> str:
    return f"{value:+.1%}"


def _point(c: Comparison) -> str:
    """The relative change when defined, else the absolute one: '+5.1%'."""
    if c.relative is not None:
        return _lift(c.relative)
    return "no change" if c.absolute is None else f"{c.absolute:+.4g}"


def _ci(c: Comparison) -> str:
    """'95% CI +1.2% to +9.0%', on the same scale as `_point`."""
    level = f"{100 * c.ci_level:.3g}% CI" if c.ci_level is not None else "CI"
    if c.relative is not None and c.relative_ci is not None:
        return f"{level} {_lift(c.relative_ci[0])} to {_lift(c.relative_ci[1])}"
    if c.absolute_ci is not None:
        return f"{level} {c.absolute_ci[0]:+.4g} to {c.absolute_ci[1]:+.4g}"
    return "no interval"


def _change(c: Comparison) -> str:
    return f"{_point(c)}, {_ci(c)}"


def leader_of(spec: MetricSpec, estimates: Mapping[str, float | None]) -> str | None:
    """The variant with the best point estimate; None without estimates or on a tie."""
    known = [(name, v) for name, v in estimates.items() if v is not None]
    if not known:
        return None
    best = known[0]
    for item in known[1:]:
        if _better(spec, item[1], best[1]):
            best = item
    if sum(1 for _, v in known if v == best[1]) > 1:
        return None
    return best[0]


def decide(
    spec: MetricSpec,
    control: str,
    estimates: Mapping[str, float | None],
    comparisons: Mapping[str, Comparison],
    *,
    srm: SrmCheck,
    sample: SampleCheck,
    implausible_variants: Sequence[str] = (),
    power: Mapping[str, PowerEstimate] | None = None,
) -> Decision:
    """Winner, leader and the sentence; `comparisons` are the treatments' on the primary metric."""
    leader = leader_of(spec, estimates)
    if srm.flagged:
        return Decision(
            None,
            leader,
            "Do not act on these results: the users per variant do not match the configured "
            f"split (sample ratio mismatch, p = {srm.p_value:.2g}); find what loses or adds "
            "users in one variant and fix it first.",
            ("sample_ratio_mismatch",),
        )
    if not sample.met:
        return Decision(
            None,
            leader,
            f"Too early to call: {sample.reason}. Keep the experiment running.",
            ("minimum_sample",),
        )
    if not comparisons:
        return Decision(
            None, leader, f"No verdict: no variant has {spec.label} to compare.", ("untestable",)
        )
    untestable = {name: c.reason for name, c in comparisons.items() if c.p_value is None}
    if untestable:
        name, reason = next(iter(untestable.items()))
        return Decision(
            None, leader, f"No verdict on {spec.label} for {name}: {reason}.", ("untestable",)
        )
    if implausible_variants:
        name = implausible_variants[0]
        c = comparisons[name]
        return Decision(
            None,
            leader,
            f"Check the tracking before acting: {name} changes {spec.label} by {_point(c)} "
            f"against {control} ({_ci(c)}), an implausibly large effect.",
            ("implausible_lift",),
        )
    improved = [
        name
        for name, c in comparisons.items()
        if c.significant and c.absolute is not None and _better(spec, c.absolute, 0.0)
    ]
    c_value = estimates.get(control)
    if improved:
        winner = improved[0]
        for name in improved[1:]:
            if _better(spec, estimates[name] or 0.0, estimates[winner] or 0.0):
                winner = name
        c, w_value = comparisons[winner], estimates[winner]
        verb = "raises" if spec.higher_is_better else "lowers"
        assert c_value is not None and w_value is not None
        return Decision(
            winner,
            leader,
            f"Ship {winner}: it {verb} {spec.label} from {_value(spec, c_value)} to "
            f"{_value(spec, w_value)} ({_change(c)}), a significant improvement over "
            f"{control}.",
        )
    worse = [name for name, c in comparisons.items() if c.significant]
    if worse and len(worse) == len(comparisons):
        name = worse[0]
        return Decision(
            control,
            leader,
            f"Keep {control}: {name} is significantly worse on {spec.label} "
            f"({_change(comparisons[name])}).",
        )
    # No significant improvement: say who leads and what the sample could have detected.
    best = next(iter(comparisons))
    for name in comparisons:
        if _better(spec, estimates[name] or 0.0, estimates[best] or 0.0):
            best = name
    sentence = (
        f"No significant difference in {spec.label} yet: {best} is at "
        f"{_point(comparisons[best])} against {control} ({_ci(comparisons[best])})"
    )
    p = (power or {}).get(best)
    if p is not None and p.relative_mde is not None:
        sentence += (
            f"; at this sample only a change of about {p.relative_mde:.1%} or more would be "
            "detected reliably"
        )
        if p.additional_users:
            sentence += (
                f", and a {p.target_lift:.0%} change needs about {p.additional_users:,} more users"
            )
    return Decision(None, leader, sentence + ".")
