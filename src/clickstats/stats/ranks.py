"""Click-position statistics from a rank histogram (rank -> clicks)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RankSummary:
    total: int
    mean: float | None
    median: float | None
    minimum: int | None
    maximum: int | None


def summarize_ranks(histogram: Mapping[int, int]) -> RankSummary:
    """Mean, median (average of the two middle clicks when their number is even), extremes."""
    counts = sorted((rank, n) for rank, n in histogram.items() if n > 0)
    total = sum(n for _, n in counts)
    if total == 0:
        return RankSummary(total=0, mean=None, median=None, minimum=None, maximum=None)
    mean = sum(rank * n for rank, n in counts) / total
    return RankSummary(
        total=total,
        mean=mean,
        median=(_nth(counts, (total - 1) // 2) + _nth(counts, total // 2)) / 2,
        minimum=counts[0][0],
        maximum=counts[-1][0],
    )


def _nth(counts: list[tuple[int, int]], index: int) -> int:
    """The rank of the index-th click (0-based) in rank order."""
    seen = 0
    for rank, n in counts:
        seen += n
        if index < seen:
            return rank
    raise IndexError(index)
