"""clickstats: self-hosted search click tracking and analytics."""

from __future__ import annotations

__version__ = "0.1.0"

from clickstats.events import ClickEvent, ClickSource, SearchImpression
from clickstats.tracking import ClickTrackingService, get_click_tracker

__all__ = [
    "ClickEvent",
    "ClickSource",
    "ClickTrackingService",
    "SearchImpression",
    "__version__",
    "get_click_tracker",
]
