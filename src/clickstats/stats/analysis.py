"""`analyze`: an experiment's summaries in, every metric's comparison, health and decision out.

Pure and synchronous: the store has already reduced the events to an `ExperimentSummary`, so
this costs the same for a hundred users or a hundred million. Degenerate data (an empty arm,
zero variance, a zero denominator, an unknown primary metric) gives a result whose `reason`
fields say why; only arguments outside their domain (alpha, method, correction) raise
ValueError, which an HTTP layer validates before calling.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clickstats.stats import sequential
from clickstats.stats.compare import METHODS, Comparison, Method, compare
from clickstats.stats.decision import (
    IMPLAUSIBLE_LIFT,
    MIN_DENOMINATOR,
    MIN_USERS,
    Decision,
    SampleCheck,
    check_sample,
    decide,
    implausible,
    no_data,
)
from clickstats.stats.health import (
    DEFAULT_POWER,
    SRM_THRESHOLD,
    PowerEstimate,
    SrmCheck,
    check_srm,
    estimate_power,
)
from clickstats.stats.multiple import CORRECTIONS, Correction, correct
from clickstats.stats.outliers import OutlierRule
from clickstats.stats.summary import METRICS, ExperimentSummary, MetricSpec, VariantSummary
from clickstats.text import plural, was_were

DEFAULT_TARGET_LIFT = 0.05


@dataclass(frozen=True, slots=True)
class MetricResult:
    """One variant's value of one metric and, for a treatment, its comparison with the control."""

    estimate: float | None
    comparison: Comparison | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class VariantResult:
    name: str
    users: int
    is_control: bool
    metrics: Mapping[str, MetricResult]


@dataclass(frozen=True, slots=True)
class Health:
    """The checks a decision depends on; `passed` is False when any of them blocks a verdict."""

    passed: bool
    srm: SrmCheck
    sample: SampleCheck
    implausible: tuple[str, ...]
    implausible_threshold: float
    power: Mapping[str, PowerEstimate]  # per treatment, on the primary metric


@dataclass(frozen=True, slots=True)
class ExperimentResult:
    experiment: str
    method: Method
    alpha: float
    tuning: float
    correction: Correction
    primary_metric: str
    control: str | None
    variants: tuple[VariantResult, ...]
    health: Health | None
    decision: Decision
    reason: str | None = None
    outliers: OutlierRule | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: nested dicts and lists, None for every undefined number."""
        out = _jsonable(self)
        assert isinstance(out, dict)
        return out


def _jsonable(value: object) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _spec(name: str) -> MetricSpec:
    # A metric outside METRICS is analysed as "higher is better", under its own name.
    return METRICS.get(name) or MetricSpec(name, name, "x", "y", True, False)


def _metric_names(summary: ExperimentSummary) -> list[str]:
    present = {m for v in summary.variants for m in v.metrics}
    return [m for m in METRICS if m in present] + sorted(present - set(METRICS))


def analyze(
    summary: ExperimentSummary,
    method: Method = "sequential",
    alpha: float = 0.05,
    primary_metric: str = "search_ctr",
    *,
    correction: Correction = "holm",
    tuning: float = sequential.DEFAULT_TUNING,
    power: float = DEFAULT_POWER,
    target_lift: float = DEFAULT_TARGET_LIFT,
    min_users: int = MIN_USERS,
    min_denominator: float = MIN_DENOMINATOR,
    implausible_lift: float = IMPLAUSIBLE_LIFT,
    srm_threshold: float = SRM_THRESHOLD,
    currency: str | None = None,
) -> ExperimentResult:
    """Compare every variant with the control on every metric; check health; decide.

    method: "sequential" (default; valid however often it is read) or "fixed" (valid when read
    once, at a sample size fixed in advance). correction: "holm" or "bh", across the treatments
    of each metric. tuning: N*, the total users where the sequential interval is tightest.
    currency: the ISO 4217 code the revenue metrics are in, named in the decision's sentence
    when the primary metric is an amount ("from 12.30 EUR to 13.10 EUR").
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    if tuning <= 0:
        raise ValueError(f"tuning (N*) must be positive, got {tuning}")
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power}")
    control = summary.control_name
    names = [v.name for v in summary.variants]
    missing = [name for name in summary.weights if name not in names]
    problem = None
    if len(set(names)) != len(names):
        problem = "a variant appears twice in the summary"
    elif control is None:
        problem = "no variant has data yet"
    elif control not in names and control not in summary.weights:
        problem = f"the control {control!r} has no data"
    elif missing and (control in missing or len(names) < 2):
        problem = no_data(missing)
    elif len(names) < 2:
        problem = (
            f"the experiment has {plural(len(names), 'variant')} with data: at least 2 are needed"
        )
    result = ExperimentResult(
        experiment=summary.experiment,
        method=method,
        alpha=alpha,
        tuning=tuning,
        correction=correction,
        primary_metric=primary_metric,
        control=control,
        variants=(),
        health=None,
        decision=Decision(None, None, f"No verdict: {problem}.", ("no_data",)),
        reason=problem,
        outliers=summary.outliers,
    )
    if problem is not None or control is None:
        return result

    comparisons = _compare_all(summary, control, alpha, method, tuning, correction)
    variants = tuple(_variant_result(summary, v, control, comparisons) for v in summary.variants)
    if primary_metric not in comparisons:
        problem = f"no variant has the primary metric {primary_metric!r}"
        decision = Decision(None, None, f"No verdict: {problem}.", ("no_primary_metric",))
        return dataclasses.replace(result, variants=variants, decision=decision, reason=problem)

    spec = _spec(primary_metric)
    # A configured variant missing from the summary had no data: the sample check names it.
    primary = {v.name: v.metrics.get(primary_metric) for v in summary.variants} | {
        name: None for name in missing
    }
    excluded = summary.outliers.excluded if summary.outliers is not None else {}
    # The split is checked on assignment: users left out as outliers were still assigned.
    users = {name: 0 for name in summary.weights} | {
        v.name: v.users + excluded.get(v.name, 0) for v in summary.variants
    }
    # The SRM check runs from the smallest sample that can get a verdict: min_users per variant.
    srm = check_srm(
        users, summary.weights, threshold=srm_threshold, min_users=min_users * len(users)
    )
    sample = check_sample(
        primary,
        denominator=spec.y,
        min_users=min_users,
        min_denominator=min_denominator,
        unit=spec.unit,
    )
    estimates = {name: None if s is None else s.ratio for name, s in primary.items()}
    flagged = implausible(comparisons[primary_metric], implausible_lift, estimates, control)
    powers = {
        name: estimate_power(
            base,
            arm,
            shares=_shares(summary, control, name),
            total_users=sum(v.users for v in summary.variants),
            target_lift=target_lift,
            alpha=alpha,
            power=power,
            method=method,
            tuning=tuning,
        )
        for name, arm in primary.items()
        if name != control and arm is not None and (base := primary[control]) is not None
    }
    health = Health(
        passed=not srm.flagged and srm.checked and sample.met and not flagged,
        srm=srm,
        sample=sample,
        implausible=flagged,
        implausible_threshold=implausible_lift,
        power=powers,
    )
    decision = decide(
        spec,
        control,
        estimates,
        comparisons[primary_metric],
        srm=srm,
        sample=sample,
        implausible_variants=flagged,
        power=powers,
        currency=currency,
    )
    if summary.outliers is not None and summary.outliers.total_excluded:
        decision = dataclasses.replace(
            decision, summary=f"{decision.summary} {_outlier_sentence(summary.outliers)}"
        )
    return dataclasses.replace(result, variants=variants, health=health, decision=decision)


def _outlier_sentence(rule: OutlierRule) -> str:
    total = rule.total_excluded
    per_variant = ", ".join(f"{n:,} in {name}" for name, n in rule.excluded.items())
    return (
        f"{plural(total, 'user')} with more than {plural(rule.max_searches or 0, 'search')} "
        f"in the window {was_were(total)} left out as implausible for a person ({per_variant})."
    )


def _compare_all(
    summary: ExperimentSummary,
    control: str,
    alpha: float,
    method: Method,
    tuning: float,
    correction: Correction,
) -> dict[str, dict[str, Comparison]]:
    """metric -> treatment -> comparison, corrected across the treatments of each metric."""
    base = summary.variant(control)
    assert base is not None
    out: dict[str, dict[str, Comparison]] = {}
    for metric in _metric_names(summary):
        raw: dict[str, Comparison] = {}
        for t in summary.variants:
            c, s = base.metrics.get(metric), t.metrics.get(metric)
            if t.name != control and c is not None and s is not None:
                raw[t.name] = compare(
                    c, s, alpha=alpha, method=method, tuning=tuning, names=(control, t.name)
                )
        out[metric] = dict(zip(raw, correct(list(raw.values()), correction), strict=True))
    return out


def _variant_result(
    summary: ExperimentSummary,
    variant: VariantSummary,
    control: str,
    comparisons: Mapping[str, Mapping[str, Comparison]],
) -> VariantResult:
    metrics: dict[str, MetricResult] = {}
    for metric in _metric_names(summary):
        s = variant.metrics.get(metric)
        c = comparisons[metric].get(variant.name)
        reason = None
        if s is None:
            reason = f"no summary of {metric} for {variant.name}"
        elif s.ratio is None:
            reason = f"no {_spec(metric).y} in {variant.name}: the metric is undefined"
        elif c is None and variant.name != control:
            reason = f"no summary of {metric} for the control"
        elif c is not None and c.reason is not None:
            reason = c.reason
        metrics[metric] = MetricResult(None if s is None else s.ratio, c, reason)
    return VariantResult(variant.name, variant.users, variant.name == control, metrics)


def _shares(summary: ExperimentSummary, control: str, treatment: str) -> tuple[float, float]:
    """The control's and the treatment's shares of all users: configured, else observed."""
    weights = summary.weights
    if weights.get(control, 0) > 0 and weights.get(treatment, 0) > 0:
        total = sum(weights.get(v.name, 0.0) for v in summary.variants)
        return weights[control] / total, weights[treatment] / total
    users = {v.name: max(v.users, 1) for v in summary.variants}
    total_users = sum(users.values())
    return users[control] / total_users, users[treatment] / total_users
