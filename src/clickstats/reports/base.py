"""What every report shares: the response model base, rates, and one cache of aggregates.

A report is a typed query in (a dataclass or arguments) and a typed result out (a `Report`,
a Pydantic model: the response model of its endpoint, so OpenAPI describes the answer).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from clickstats.store.base import EventStore

T = TypeVar("T")


def ratio(numerator: int, denominator: int) -> float | None:
    """A rate, or None (JSON null) when there is nothing to divide by."""
    return numerator / denominator if denominator else None


class Report(BaseModel):
    model_config = ConfigDict(frozen=True)

    # The original design returned dicts: report["ctr"], "ctr" in report, report.get("ctr").
    def __getitem__(self, key: str) -> Any:
        if key not in type(self).model_fields:
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in type(self).model_fields

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self else default

    def keys(self) -> list[str]:
        return list(type(self).model_fields)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# store -> {key: answer}, for the store's current write generation only. While the store has
# taken no write since, an aggregate's answer is still exact, so repeated reads (a dashboard,
# several methods of one experiment) reuse it. Entries go with their store.
_cache: weakref.WeakKeyDictionary[EventStore, dict[tuple[int, Hashable], Any]] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()
_KEEP = 32  # answers kept per store


def cached(store: EventStore, key: Hashable, compute: Callable[[], T]) -> T:
    """`compute()`, or its answer from an earlier call with this key while the store's write
    generation is the same. Stores that cannot tell (other processes write too) never cache."""
    generation = store.generation()
    if generation is None:
        return compute()
    full = (generation, key)
    with _lock:
        entries = _cache.setdefault(store, {})
        if full in entries:
            return entries[full]  # type: ignore[no-any-return]
    answer = compute()
    with _lock:
        entries = _cache.setdefault(store, {})
        for old in [k for k in entries if k[0] != generation or len(entries) >= _KEEP]:
            del entries[old]  # other generations are of no further use
        entries[full] = answer
    return answer
