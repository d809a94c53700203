"""clickstats: self-hosted search click tracking and analytics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from clickstats.events import ClickEvent, ClickSource, SearchImpression
    from clickstats.tracking import ClickTrackingService, get_click_tracker

# The public names, imported on first use: `import clickstats.cli` (and so `clickstats --help`)
# must not pay for pydantic, scipy and the stores that the tracking service pulls in.
_LAZY = {
    "ClickEvent": "clickstats.events",
    "ClickSource": "clickstats.events",
    "SearchImpression": "clickstats.events",
    "ClickTrackingService": "clickstats.tracking",
    "get_click_tracker": "clickstats.tracking",
}

__all__ = [
    "ClickEvent",
    "ClickSource",
    "ClickTrackingService",
    "SearchImpression",
    "__version__",
    "get_click_tracker",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
