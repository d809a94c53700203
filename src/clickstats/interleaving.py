"""Team-draft interleaving: two rankers in one result list, and the team each click credits.

Radlinski, Kurup and Joachims, "How does clickthrough data reflect retrieval quality?"
(CIKM 2008). Each round, the team with fewer picks so far (a fair coin on a tie) adds its
highest-ranked result not yet placed; every position remembers the team that placed it. A
search's clicks are credited to the teams of the clicked positions, and the team with more
clicked positions wins the search (equal counts: a tie; no click: no outcome).

Which ranker the outcomes prefer, with the user as the unit, is pure statistics:
`clickstats.stats.preference`. docs/INTERLEAVING.md has the worked example.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from clickstats.stats.preference import Outcome

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Interleaved", "Outcome", "Team", "credit", "team_draft"]

Team = Literal["A", "B"]


@dataclass(frozen=True, slots=True)
class Interleaved:
    """The merged list in rank order, and the team that placed each position."""

    product_ids: list[str]
    teams: list[Team]

    def credit(self, clicked_product_ids: Iterable[str]) -> Outcome:
        """The search's outcome from the clicked products (ids not shown are ignored).

        Crediting by product id rather than by the rank a client reports is what the store
        does too: an interleaved list holds each product once.
        """
        position = {pid: rank for rank, pid in enumerate(self.product_ids, start=1)}
        return credit(self.teams, (position[p] for p in clicked_product_ids if p in position))


def team_draft(
    a: Sequence[str],
    b: Sequence[str],
    *,
    limit: int,
    rng: random.Random | np.random.Generator,
) -> Interleaved:
    """Team-draft interleaving of ranking `a` (team A) and ranking `b` (team B).

    Each round, the team with fewer picks adds its highest result not yet placed; on equal
    picks a fair coin decides (`rng.random() < 0.5`: A first), drawn only then, so full
    rankings of length >= limit use ceil(limit / 2) draws. A result already placed, by either
    team, is skipped by both. When one ranking has nothing left to place, the other keeps
    filling. Stops at `limit` results, or when both rankings are used up.
    """
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    placed: set[str] = set()
    product_ids: list[str] = []
    teams: list[Team] = []
    next_a = next_b = picks_a = picks_b = 0
    while len(product_ids) < limit:
        while next_a < len(a) and a[next_a] in placed:
            next_a += 1
        while next_b < len(b) and b[next_b] in placed:
            next_b += 1
        a_left, b_left = next_a < len(a), next_b < len(b)
        if a_left and b_left:
            a_turn = picks_a < picks_b or (picks_a == picks_b and rng.random() < 0.5)
        elif a_left or b_left:
            a_turn = a_left
        else:
            break
        if a_turn:
            pick, picks_a = a[next_a], picks_a + 1
            teams.append("A")
        else:
            pick, picks_b = b[next_b], picks_b + 1
            teams.append("B")
        placed.add(pick)
        product_ids.append(pick)
    return Interleaved(product_ids, teams)


def credit(teams: Sequence[Team], clicked_ranks: Iterable[int]) -> Outcome:
    """Which team won a search: the one with more clicked positions (1-based ranks).

    A position clicked twice counts once; ranks outside 1..len(teams) are ignored. "tie" when
    both teams have as many clicked positions, "none" when no position was clicked.
    """
    positions = {r for r in clicked_ranks if 1 <= r <= len(teams)}
    wins_b = sum(1 for r in positions if teams[r - 1] == "B")
    wins_a = len(positions) - wins_b
    if not positions:
        return "none"
    if wins_a == wins_b:
        return "tie"
    return "A" if wins_a > wins_b else "B"
