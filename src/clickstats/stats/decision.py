"""The decision in words: winner, leader and one sentence a product manager can act on.

A winner is named only when every guard passes:
- the sample ratio check did not fire (`health.check_srm`);
- every variant has at least `MIN_USERS` users and `MIN_DENOMINATOR` units of the primary
  metric's denominator (150 searches for search CTR; GrowthBook's own floor is 150 events);
- every configured variant has data (one without is named);
- no variant's relative change in the primary metric is `IMPLAUSIBLE_LIFT` (50%) or more either
  way, and neither it nor the control is at 0 while the other is not: a ranking change rarely
  moves search CTR that much, a tracking bug often does;
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
from clickstats.text import join_names, plural

MIN_USERS = 30
MIN_DENOMINATOR = 150
IMPLAUSIBLE_LIFT = 0.5


@dataclass(frozen=True, slots=True)
class SampleCheck:
    """Whether every variant reached the minimum sample for a verdict."""

    met: bool
    min_users: int
    min_denominator: int | float  # as given: 150 stays an int on the wire
    denominator: str
    short: tuple[str, ...] = ()  # the variants below the minimum
    reason: str | None = None
    missing: tuple[str, ...] = ()  # the variants with no data at all (also in `short`)


def check_sample(
    arms: Mapping[str, RatioSummary | None],
    *,
    denominator: str,
    min_users: int = MIN_USERS,
    min_denominator: float = MIN_DENOMINATOR,
    unit: str = "search",
) -> SampleCheck:
    """`arms` maps each variant to its summary of the primary metric (None: no data at all);
    `unit` is one unit of the denominator, for the sentence ("150 searches"). A per-user mean
    (unit "user": revenue per user) counts users twice over, so the sentence names them once:
    "search_v1 has 20 users; a verdict needs at least 150 users in every variant"."""
    short = tuple(
        name
        for name, s in arms.items()
        if s is None or s.users == 0 or s.users < min_users or s.sum_y < min_denominator
    )
    missing = tuple(name for name in short if (s := arms[name]) is None or s.users == 0)
    reason = None
    per_user = unit == "user"
    if short:
        parts = []
        for name in short:
            s = arms[name]
            if s is None or s.users == 0:
                parts.append(f"{name} has no data yet")
            elif per_user:
                parts.append(f"{name} has {plural(s.users, 'user')}")
            else:
                parts.append(f"{name} has {plural(s.users, 'user')} and {plural(s.sum_y, unit)}")
        needed = (
            plural(max(min_users, min_denominator), "user")
            if per_user
            else f"{plural(min_users, 'user')} and {plural(min_denominator, unit)}"
        )
        reason = f"{'; '.join(parts)}; a verdict needs at least {needed} in every variant"
    return SampleCheck(not short, min_users, min_denominator, denominator, short, reason, missing)


def implausible(
    comparisons: Mapping[str, Comparison],
    threshold: float = IMPLAUSIBLE_LIFT,
    estimates: Mapping[str, float | None] | None = None,
    control: str | None = None,
) -> tuple[str, ...]:
    """The variants whose relative change is `threshold` or more in either direction, or whose
    value or the control's is 0 while the other's is not: what broken tracking looks like."""
    estimates = estimates or {}
    c_value = estimates.get(control) if control is not None else None
    flagged = []
    for name, c in comparisons.items():
        value = estimates.get(name)
        one_is_zero = c_value is not None and value is not None and (c_value == 0) != (value == 0)
        if one_is_zero or (c.relative is not None and abs(c.relative) >= threshold):
            flagged.append(name)
    return tuple(flagged)


@dataclass(frozen=True, slots=True)
class Decision:
    winner: str | None
    leader: str | None
    summary: str
    blocked_by: tuple[str, ...] = ()  # why a verdict was withheld


def _better(spec: MetricSpec, a: float, b: float) -> bool:
    return a > b if spec.higher_is_better else a < b


def _amount(text: str, currency: str | None) -> str:
    return f"{text} {currency}" if currency else text


def _value(spec: MetricSpec, value: float, currency: str | None = None) -> str:
    """A value as the sentence quotes it: a rate in percent ("28.6%"), an amount of money with
    two decimals and its currency ("12.30 EUR"; `currency` is the analysis currency, named only
    for the metrics that are amounts in it), anything else to 4 significant digits."""
    if spec.percent:
        return f"{value:.1%}"
    if spec.currency:
        return _amount(f"{value:,.2f}", currency)
    return f"{value:.4g}"


def _lift(value: float) -> str:
    return f"{value:+.1%}"


def _difference(spec: MetricSpec, value: float, currency: str | None = None) -> str:
    """An absolute difference: percentage points for a rate, the metric's own unit otherwise
    (an amount of money in its currency: "+0.80 EUR")."""
    if spec.percent:
        return f"{100 * value:+.1f} pp"
    if spec.currency:
        return _amount(f"{value:+,.2f}", currency)
    return f"{value:+.4g}"


def _point(spec: MetricSpec, c: Comparison, currency: str | None = None) -> str:
    """The relative change ('+5.1%'); the difference when it is undefined (a control at 0)."""
    if c.relative is not None:
        return _lift(c.relative)
    return "no change" if c.absolute is None else _difference(spec, c.absolute, currency)


def _ci(spec: MetricSpec, c: Comparison, currency: str | None = None) -> str:
    """'95% CI +1.2% to +9.0%': the interval on the scale of `_point` (the relative change, or
    the difference when the control's value is 0)."""
    level = f"{100 * c.ci_level:.3g}% CI" if c.ci_level is not None else "CI"
    if c.relative is not None and c.relative_ci is not None:
        return f"{level} {_lift(c.relative_ci[0])} to {_lift(c.relative_ci[1])}"
    if c.relative is None and c.absolute_ci is not None:
        low, high = (_difference(spec, bound, currency) for bound in c.absolute_ci)
        return f"{level} {low} to {high}"
    return "no interval"


def _change(spec: MetricSpec, c: Comparison, currency: str | None = None) -> str:
    # CUPED's change is not the ratio of the unadjusted estimates the sentence may quote
    adjusted = " after CUPED" if c.cuped is not None and c.cuped.applied else ""
    return f"{_point(spec, c, currency)}{adjusted}, {_ci(spec, c, currency)}"


def no_data(missing: Sequence[str]) -> str:
    """What to say of configured variants that have no data at all."""
    one = len(missing) == 1
    return (
        f"{join_names(missing)} {'has' if one else 'have'} no data yet; check that "
        f"{'its' if one else 'their'} searches are logged with the variant the experiment assigned"
    )


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
    currency: str | None = None,
) -> Decision:
    """Winner, leader and the sentence; `comparisons` are the treatments' on the primary metric.

    The sentence quotes the relative change and its interval, which is the tested difference's
    interval divided by the control's value: it says "significant" exactly when the interval
    it prints excludes 0. `currency`: the ISO 4217 code of the analysis, with which a metric
    that is an amount of money (`Metric.currency`, revenue per user) is quoted: "from
    12.30 EUR to 13.10 EUR".
    """

    def value(v: float) -> str:
        return _value(spec, v, currency)

    def change(c: Comparison) -> str:
        return _change(spec, c, currency)

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
    if sample.missing:
        return Decision(None, leader, f"No verdict: {no_data(sample.missing)}.", ("no_data",))
    if not sample.met:
        return Decision(
            None,
            leader,
            f"Too early to call: {sample.reason}. Keep the experiment running.",
            ("minimum_sample",),
        )
    if not srm.checked:
        return Decision(
            None,
            leader,
            f"No verdict yet: the split between variants cannot be checked ({srm.reason}).",
            ("sample_ratio_unchecked",),
        )
    if implausible_variants:
        name = implausible_variants[0]
        c_value, v_value = estimates.get(control), estimates.get(name)
        if c_value is not None and v_value is not None and (c_value == 0 or v_value == 0):
            zero = control if c_value == 0 else name
            return Decision(
                None,
                leader,
                f"Check the tracking before acting: {spec.label} is {value(c_value)} in "
                f"{control} and {value(v_value)} in {name}; a value of 0 in {zero} usually "
                "means its events are not recorded.",
                ("implausible_lift",),
            )
        c = comparisons[name]
        return Decision(
            None,
            leader,
            f"Check the tracking before acting: {name} changes {spec.label} by "
            f"{change(c)} against {control}, an implausibly large effect.",
            ("implausible_lift",),
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
            f"Ship {winner}: it {verb} {spec.label} from {value(c_value)} to "
            f"{value(w_value)} ({change(c)}), a significant improvement over "
            f"{control}.",
        )
    worse = [name for name, c in comparisons.items() if c.significant]
    if worse and len(worse) == len(comparisons):
        name = worse[0]
        return Decision(
            control,
            leader,
            f"Keep {control}: {name} is significantly worse on {spec.label} "
            f"({change(comparisons[name])}).",
        )
    # No significant improvement: say who leads among the rest, what the sample could have
    # detected, and which variants are significantly worse.
    undecided = [name for name in comparisons if name not in worse]
    best = undecided[0]
    for name in undecided:
        if _better(spec, estimates[name] or 0.0, estimates[best] or 0.0):
            best = name
    sentence = (
        f"No significant difference in {spec.label} yet: {best} is at "
        f"{change(comparisons[best])} against {control}"
    )
    if worse:
        listed = join_names([f"{name} ({change(comparisons[name])})" for name in worse])
        sentence += f", while {listed} {'is' if len(worse) == 1 else 'are'} significantly worse"
    p = (power or {}).get(best)
    if p is not None and p.relative_mde is not None:
        sentence += (
            f"; at this sample only a change of about {p.relative_mde:.1%} or more would be "
            "detected reliably"
        )
        if p.additional_users:
            sentence += (
                f", and a {p.target_lift:.0%} change needs about "
                f"{plural(p.additional_users, 'more user', 'more users')}"
            )
    return Decision(None, leader, sentence + ".")
