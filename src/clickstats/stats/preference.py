"""The preference between two interleaved rankers, with the user as the unit.

The preference for B is the share of B wins among the searches one team won (team-draft
interleaving: `clickstats.interleaving`). Its inference takes the user as the unit: a user's
searches are not independent (the same habits, the same queries), so the preference is the
ratio metric sum_u x_u / sum_u y_u over users, with x_u = the user's B wins and y_u = the
user's won (non-tie) searches, and its variance comes from the delta method on per-user sums
(`clickstats.stats.compare.ratio_variance`), as for every A/B metric. A store reduces the
events to a `PreferenceSummary` (seven sums, one GROUP BY over per-user counts);
`analyze_preference` does the rest. docs/INTERLEAVING.md has the worked example, the store
contract and the validation by simulation.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from clickstats.stats.compare import ratio_variance
from clickstats.stats.summary import RatioSummary

#: A search's outcome: the team that won it, a tie, or no clicked position.
Outcome = Literal["A", "B", "tie", "none"]
NULL_PREFERENCE = 0.5
#: Below this many users the normal approximation is liberal (simulated A/A false-positive rate
#: at alpha = 0.05: 0.088 with 30 users, 0.060 with 100, 0.054 with 200; docs/INTERLEAVING.md),
#: so the verdict calls a significant result preliminary.
MIN_USERS = 100


@dataclass(frozen=True, slots=True)
class PreferenceSummary:
    """Sums over users of their per-user outcome counts: what a store hands the statistics.

    For user u: a_u = searches A won, b_u = searches B won, t_u = ties. `users` counts the users
    with at least one search with clicks (users with none change nothing but n / (n - 1)).
    """

    users: int
    sum_wins_a: float
    sum_wins_b: float
    sum_ties: float
    sum_wins_a2: float
    sum_wins_b2: float
    sum_wins_ab: float

    @classmethod
    def from_user_counts(
        cls, wins_a: Iterable[float], wins_b: Iterable[float], ties: Iterable[float]
    ) -> PreferenceSummary:
        """The summary of per-user counts (three sequences, one entry per user)."""
        import numpy as np  # not at import: `clickstats --help` need not load it

        a, b, t = (np.asarray(list(v), dtype=np.float64) for v in (wins_a, wins_b, ties))
        if not a.shape == b.shape == t.shape:
            raise ValueError(
                f"wins_a, wins_b and ties have {a.size}, {b.size} and {t.size} users; "
                "give one count per user in each"
            )
        return cls(
            users=int(a.size),
            sum_wins_a=float(a.sum()),
            sum_wins_b=float(b.sum()),
            sum_ties=float(t.sum()),
            sum_wins_a2=float((a * a).sum()),
            sum_wins_b2=float((b * b).sum()),
            sum_wins_ab=float((a * b).sum()),
        )

    @classmethod
    def from_outcomes(cls, searches: Iterable[tuple[str, Outcome]]) -> PreferenceSummary:
        """The summary of (user id, outcome) per search; "none" outcomes are left out."""
        counts: dict[str, list[int]] = {}
        column = {"A": 0, "B": 1, "tie": 2}
        for user, outcome in searches:
            if outcome != "none":
                counts.setdefault(user, [0, 0, 0])[column[outcome]] += 1
        rows = list(counts.values())
        return cls.from_user_counts(*(([r[i] for r in rows]) for i in range(3)))

    @property
    def searches_with_clicks(self) -> float:
        return self.sum_wins_a + self.sum_wins_b + self.sum_ties

    def ratio(self) -> RatioSummary:
        """The preference as a ratio metric: x = B wins, y = A wins + B wins, per user."""
        a2, b2, ab = self.sum_wins_a2, self.sum_wins_b2, self.sum_wins_ab
        return RatioSummary(
            users=self.users,
            sum_x=self.sum_wins_b,
            sum_y=self.sum_wins_a + self.sum_wins_b,
            sum_x2=b2,
            sum_y2=a2 + 2 * ab + b2,
            sum_xy=ab + b2,
        )


@dataclass(frozen=True, slots=True)
class PreferenceResult:
    """The preference for B and its test against 0.5 (no preference).

    `preference` is B wins / (A wins + B wins); the interval and the two-sided p-value are
    normal-approximation ones at the user level, `significant` is p < alpha. `reason` says why
    some fields are None; `verdict` is one sentence, always set.
    """

    users: int
    searches_with_clicks: int
    wins_a: int
    wins_b: int
    ties: int
    preference: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    significant: bool
    alpha: float
    verdict: str
    reason: str | None = None


def analyze_preference(
    summary: PreferenceSummary, *, alpha: float = 0.05, names: tuple[str, str] = ("A", "B")
) -> PreferenceResult:
    """Preference, interval, p-value and verdict; `names` are the rankers of teams A and B.

    The interval is preference +- z_(1 - alpha/2) * se, clipped to [0, 1], so it excludes 0.5
    exactly when p < alpha. `significant` is p < alpha whatever the sample; with fewer than
    MIN_USERS users the verdict calls a significant result preliminary. Degenerate data (no
    clicks, only ties, one user, zero variance) gives a result whose `reason` says why, never
    an exception; only alpha outside (0, 1) raises ValueError.
    """
    from scipy.stats import norm  # type: ignore[import-untyped]  # not at import: slow

    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    name_a, name_b = names
    wins_a, wins_b = round(summary.sum_wins_a), round(summary.sum_wins_b)
    empty = PreferenceResult(
        users=summary.users,
        searches_with_clicks=round(summary.searches_with_clicks),
        wins_a=wins_a,
        wins_b=wins_b,
        ties=round(summary.sum_ties),
        preference=None,
        se=None,
        ci_low=None,
        ci_high=None,
        p_value=None,
        significant=False,
        alpha=alpha,
        verdict="",
    )

    def degenerate(reason: str, preference: float | None = None) -> PreferenceResult:
        verdict = f"Not enough data to compare {name_a} and {name_b}: {reason}."
        return dataclasses.replace(empty, preference=preference, verdict=verdict, reason=reason)

    if summary.searches_with_clicks <= 0:
        return degenerate("no search has a click yet")
    if wins_a + wins_b == 0:
        return degenerate("every search with clicks is a tie, so no team has won one")
    if summary.users < 2:
        return degenerate(
            f"{summary.users} user has clicked; at least 2 are needed for a user-level variance"
        )
    ratio = summary.ratio()
    preference = summary.sum_wins_b / (summary.sum_wins_a + summary.sum_wins_b)
    variance = ratio_variance(ratio)
    if not variance:  # None cannot happen here (users >= 2, sum_y > 0); 0 can
        return degenerate(
            "zero variance: every user's won searches are split the same way", preference
        )
    se = math.sqrt(variance)
    z = (preference - NULL_PREFERENCE) / se
    p_value = float(2 * norm.sf(abs(z)))
    half = float(norm.isf(alpha / 2)) * se
    low, high = max(preference - half, 0.0), min(preference + half, 1.0)
    significant = p_value < alpha
    p_text = "p < 0.0001" if p_value < 1e-4 else f"p = {p_value:.2g}"
    evidence = (
        f"{name_b} wins {preference:.1%} of the {wins_a + wins_b:,} searches won by either "
        f"ranker ({1 - alpha:.0%} CI {low:.1%} to {high:.1%}, {p_text}, {summary.users:,} users)"
    )
    better = name_b if preference > NULL_PREFERENCE else name_a
    if not significant:
        verdict = f"No significant preference between {name_a} and {name_b}: {evidence}."
    elif summary.users < MIN_USERS:
        verdict = (
            f"Users seem to prefer {better}, but {summary.users} users are too few to rely on "
            f"(at least {MIN_USERS} are needed): {evidence}."
        )
    else:
        verdict = f"Users prefer {better}: {evidence}."
    return dataclasses.replace(
        empty,
        preference=preference,
        se=se,
        ci_low=low,
        ci_high=high,
        p_value=p_value,
        significant=significant,
        verdict=verdict,
    )
