"""Implicit relevance judgments: how relevant a product is for a query, learned from clicks
corrected for position bias, with an interval and a grade on the 0-3 scale.

Both models read `JudgmentCounts` (store/base.py): per (query, product, rank) the searches that
showed the product there (n) and those with a click on it (c), and per rank the same over
every shown product.

- **COEC** (clicks over expected clicks; Cheng & Cantu-Paz, WSDM 2010): with CTR_r the
  click-through rate of rank r over every search, a pair's expected clicks are
  E = sum_r n_r * CTR_r, and COEC = C / E. 1 is "clicked as often as an average product at
  the ranks it was shown at". The OpenSearch Search Relevance Workbench uses a simpler variant:
  the pair's lowest rank's CTR times all its impressions; with a product shown at one rank
  only, the two agree. Interval: clicks taken as Poisson with mean COEC * E (CTR_r as known:
  it comes from every search), the exact (Garwood) interval of the rate.
- **PBM** (position-based model; Chuklin, Markov & de Rijke, *Click Models for Web Search*,
  2015, ch. 3 and 4): P(click | q, d, r) = alpha_qd * gamma_r, fitted by expectation-
  maximisation (each parameter starts at 0.5; attractiveness by maximum likelihood, examination
  with PyClick's one pseudo-click in two pseudo-sessions: see fit_pbm). The likelihood does not change when every alpha
  is multiplied and every gamma divided by the same number, so the fit is scaled so that the
  most examined rank has gamma = 1 (the top result is always looked at). Interval: the Jeffreys
  interval of a binomial with the Fisher information of alpha at the fit (gamma as known):
  `examinations` = sum_r n_r * gamma_r * (1 - alpha) / (1 - gamma_r * alpha) effective
  trials, alpha * examinations successes.

Grades (what the Workbench imports, 0-3): PBM's alpha, a probability, is 3 * alpha; COEC, a
ratio in [0, inf), is 3 * COEC / (1 + COEC), so that 1 (average) is 1.5 and twice average 2.
Both are increasing, so grades keep the order of the scores, and the intervals map onto grades.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from clickstats.store.base import Counts, JudgmentCount, JudgmentCounts

Model = Literal["coec", "pbm"]
MAX_GRADE = 3.0
CONFIDENCE = 0.95
#: PBM's EM stops when no (scaled) parameter moves more than this in one iteration: a grade
#: (3 * alpha) is then settled well below its printed precision (0.001). Or after MAX_ITERATIONS.
TOLERANCE = 1e-5
MAX_ITERATIONS = 5000
#: Attractiveness stays below 1, so that 1 - alpha * gamma never reaches 0.
MAX_ALPHA = 1.0 - 1e-9


@dataclass(frozen=True, slots=True)
class Judgment:
    """One (query, product): its searches and clicks, the model's score with its interval,
    and the score as a grade on 0-3 (None, with the interval, when the data cannot tell)."""

    query: str
    product_id: str
    impressions: int
    clicks: int
    score: float | None
    low: float | None
    high: float | None
    grade: float | None
    grade_low: float | None
    grade_high: float | None
    #: COEC: the clicks expected at its ranks; PBM: the effective examinations (see the module)
    evidence: float


@dataclass(frozen=True, slots=True)
class Judgments:
    """Every pair's judgment by one model, with the per-rank figures it used: the ranks' CTRs
    (both models) and PBM's examination probabilities. `error` says why there are none."""

    model: Model
    judgments: tuple[Judgment, ...] = ()
    rank_ctr: Mapping[int, float] = field(default_factory=dict)
    examination: Mapping[int, float] = field(default_factory=dict)
    iterations: int = 0
    converged: bool = True
    error: str | None = None


def coec_grade(score: float) -> float:
    return MAX_GRADE * score / (1.0 + score)


def pbm_grade(score: float) -> float:
    return MAX_GRADE * score


def rank_ctr(ranks: Mapping[int, Counts]) -> dict[int, float]:
    """Each rank's click-through rate: its clicked shown products over its shown products."""
    return {r: c.clicks / c.impressions for r, c in sorted(ranks.items()) if c.impressions}


Interval = tuple[float, float]


def poisson_rate_intervals(
    clicks: Sequence[int], expected: Sequence[float], confidence: float = CONFIDENCE
) -> list[Interval]:
    """For each pair, the exact (Garwood) interval of the rate theta in
    clicks ~ Poisson(theta * expected): Gamma quantiles, computed for all pairs at once."""
    import numpy as np
    from scipy.stats import gamma  # type: ignore[import-untyped]  # not at import: slow

    c, e = np.asarray(clicks, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    tail = (1.0 - confidence) / 2
    low = np.where(c > 0, gamma.ppf(tail, np.maximum(c, 1.0)) / e, 0.0)
    high = gamma.ppf(1.0 - tail, c + 1.0) / e
    return list(zip(low.tolist(), high.tolist(), strict=True))


def poisson_rate_interval(clicks: int, expected: float, confidence: float = CONFIDENCE) -> Interval:
    return poisson_rate_intervals([clicks], [expected], confidence)[0]


def jeffreys_intervals(
    successes: Sequence[float], trials: Sequence[float], confidence: float = CONFIDENCE
) -> list[Interval]:
    """For each pair, the Jeffreys interval of a proportion (trials and successes may be
    fractional): the Beta(successes + 1/2, failures + 1/2) posterior's equal tails, with 0 and
    1 at the ends (Brown, Cai & DasGupta 2001)."""
    import numpy as np
    from scipy.stats import beta  # not at import: slow

    x, n = np.asarray(successes, dtype=np.float64), np.asarray(trials, dtype=np.float64)
    a, b = x + 0.5, np.maximum(n - x, 0.0) + 0.5
    tail = (1.0 - confidence) / 2
    low = np.where(x > 0, beta.ppf(tail, a, b), 0.0)
    high = np.where(x < n, beta.ppf(1.0 - tail, a, b), 1.0)
    return list(zip(low.tolist(), high.tolist(), strict=True))


def jeffreys_interval(successes: float, trials: float, confidence: float = CONFIDENCE) -> Interval:
    return jeffreys_intervals([successes], [trials], confidence)[0]


def _pairs(rows: Sequence[JudgmentCount]) -> dict[tuple[str, str], list[JudgmentCount]]:
    out: dict[tuple[str, str], list[JudgmentCount]] = {}
    for row in rows:
        out.setdefault((row.query, row.product_id), []).append(row)
    return out


#: score, low, high, grade, grade_low, grade_high of a pair the data cannot judge
_UNKNOWN = (None, None, None, None, None, None)


def coec(counts: JudgmentCounts, confidence: float = CONFIDENCE) -> Judgments:
    """Clicks over expected clicks for every pair of `counts.rows` (module docstring)."""
    ctr = rank_ctr(counts.ranks)
    if not counts.rows:
        return Judgments("coec", rank_ctr=ctr, error="no product was shown in enough searches")
    pairs = _pairs(counts.rows)
    shown = [sum(r.impressions for r in rows) for rows in pairs.values()]
    clicks = [sum(r.clicks for r in rows) for rows in pairs.values()]
    expected = [sum(r.impressions * ctr.get(r.rank, 0.0) for r in rows) for rows in pairs.values()]
    intervals = poisson_rate_intervals(clicks, [e or 1.0 for e in expected], confidence)
    out = []
    for (query, product), n, c, e, (low, high) in zip(
        pairs, shown, clicks, expected, intervals, strict=True
    ):
        if e == 0:  # no product was clicked at its ranks: nothing to compare it with
            out.append(Judgment(query, product, n, c, *_UNKNOWN, 0.0))
            continue
        score = c / e
        grades = coec_grade(score), coec_grade(low), coec_grade(high)
        out.append(Judgment(query, product, n, c, score, low, high, *grades, e))
    return Judgments("coec", tuple(out), rank_ctr=ctr)


@dataclass(frozen=True, slots=True)
class PbmFit:
    """PBM's parameters as EM left them (not yet scaled): attractiveness per pair (in the order
    of first appearance in the rows), examination per rank."""

    pairs: tuple[tuple[str, str], ...]
    attractiveness: tuple[float, ...]
    examination: Mapping[int, float]
    iterations: int
    converged: bool


def fit_pbm(
    rows: Sequence[JudgmentCount],
    max_iterations: int = MAX_ITERATIONS,
    tolerance: float = TOLERANCE,
) -> PbmFit:
    """PBM by EM over the aggregated rows (n searches with c clicks at a rank are n sessions).

    A clicked slot was examined and attractive; an unclicked one was, given the current
    alpha and gamma, attractive with probability (1 - gamma) * alpha / (1 - gamma * alpha)
    and examined with probability (1 - alpha) * gamma / (1 - gamma * alpha). Attractiveness
    becomes expected attractive sessions / sessions (maximum likelihood, Chuklin et al. 2015,
    ch. 4); examination (1 + expected examined sessions) / (2 + sessions), PyClick's
    PBMExamEM. PyClick gives attractiveness the same pseudo-counts, but a pair shown low sees
    few examinations (30 sessions at a rank examined 1 in 10 are 3), and one pseudo-click in
    two then weighs as much as its data: alpha ~ (clicks + 1) / (3 + 2)."""
    import numpy as np

    keys = list(_pairs(rows))
    index = {k: i for i, k in enumerate(keys)}
    ranks = sorted({r.rank for r in rows})
    rank_index = {r: i for i, r in enumerate(ranks)}
    p = np.array([index[r.query, r.product_id] for r in rows], dtype=np.intp)
    k = np.array([rank_index[r.rank] for r in rows], dtype=np.intp)
    n = np.array([r.impressions for r in rows], dtype=np.float64)
    c = np.array([r.clicks for r in rows], dtype=np.float64)
    alpha, gamma = np.full(len(keys), 0.5), np.full(len(ranks), 0.5)
    sessions_p = np.bincount(p, n, len(keys))
    sessions_k = np.bincount(k, n, len(ranks)) + 2.0
    iterations, converged = 0, False
    while iterations < max_iterations and not converged:
        a, g = alpha[p], gamma[k]
        unclicked = (n - c) / (1.0 - a * g)
        attracted = np.bincount(p, c + unclicked * (1.0 - g) * a, len(keys))
        new_alpha = np.minimum(attracted / sessions_p, MAX_ALPHA)
        new_gamma = (np.bincount(k, c + unclicked * (1.0 - a) * g, len(ranks)) + 1.0) / sessions_k
        # Along the likelihood's ridge (alpha * s, gamma / s) EM creeps; what is reported is
        # scaled (gamma / max gamma), so that is what must have settled.
        scale, new_scale = gamma.max(), new_gamma.max()
        change = max(
            np.abs(new_alpha * new_scale - alpha * scale).max(),
            np.abs(new_gamma / new_scale - gamma / scale).max(),
        )
        alpha, gamma, iterations = new_alpha, new_gamma, iterations + 1
        converged = bool(change < tolerance)
    return PbmFit(
        pairs=tuple(keys),
        attractiveness=tuple(float(x) for x in alpha),
        examination={r: float(gamma[i]) for r, i in rank_index.items()},
        iterations=iterations,
        converged=converged,
    )


def pbm(
    counts: JudgmentCounts,
    confidence: float = CONFIDENCE,
    max_iterations: int = MAX_ITERATIONS,
) -> Judgments:
    """PBM's attractiveness for every pair of `counts.rows`, scaled so that the most examined
    rank has examination 1, with its Jeffreys interval (module docstring)."""
    ctr = rank_ctr(counts.ranks)
    if not counts.rows:
        return Judgments("pbm", rank_ctr=ctr, error="no product was shown in enough searches")
    fit = fit_pbm(counts.rows, max_iterations)
    top = max(fit.examination.values())
    gamma = {r: g / top for r, g in fit.examination.items()}
    pairs = _pairs(counts.rows)
    alphas = [raw * top for raw in fit.attractiveness]
    trials = [
        sum(r.impressions * gamma[r.rank] * (1 - a) / (1 - gamma[r.rank] * a) for r in rows)
        for a, rows in zip(alphas, pairs.values(), strict=True)
    ]
    intervals = jeffreys_intervals(
        [a * t for a, t in zip(alphas, trials, strict=True)], trials, confidence
    )
    out = []
    for (key, rows), alpha, t, (low, high) in zip(
        pairs.items(), alphas, trials, intervals, strict=True
    ):
        # EM approaches alpha = 0 (a pair never clicked) without reaching it, where the Beta
        # quantile would put the lower end above the estimate.
        low, high = min(low, alpha), max(high, alpha)
        out.append(
            Judgment(
                *key,
                impressions=sum(r.impressions for r in rows),
                clicks=sum(r.clicks for r in rows),
                score=alpha,
                low=low,
                high=high,
                grade=pbm_grade(alpha),
                grade_low=pbm_grade(low),
                grade_high=pbm_grade(high),
                evidence=t,
            )
        )
    return Judgments(
        "pbm",
        tuple(out),
        rank_ctr=ctr,
        examination=gamma,
        iterations=fit.iterations,
        converged=fit.converged,
    )


def judge(counts: JudgmentCounts, model: Model, confidence: float = CONFIDENCE) -> Judgments:
    return coec(counts, confidence) if model == "coec" else pbm(counts, confidence)
