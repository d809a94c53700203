"""Days in the viewer's time zone: checking a zone's name, and where its UTC offset changes.

A day bucket is a local calendar day. Converting every event's time with a time-zone library
costs a database far more than adding an offset; within a window a zone has only a few
offsets (daylight saving time changes), so they are found here, once, with zoneinfo.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_HOUR = 3600


def check_tz(tz: str) -> str:
    """An IANA time zone name, or ValueError naming the problem."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {tz!r}: use an IANA name such as 'Europe/Berlin' or 'UTC'"
        ) from None
    return tz


def _offset(zone: ZoneInfo, epoch: int) -> int:
    offset = datetime.fromtimestamp(epoch, UTC).astimezone(zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def utc_offsets(tz: str, start: datetime, end: datetime) -> list[tuple[datetime, int]]:
    """The stretches of [start, end) with one UTC offset in `tz`: (first instant, offset in
    seconds), the first from `start` (to the second). Changes are found hour by hour, then to
    the second: zones change their offset at most a few times a year."""
    zone = ZoneInfo(tz)
    t, stop = int(start.timestamp()), int(end.timestamp())
    out = [(t, _offset(zone, t))]
    while t < stop:
        step = min(t + _HOUR, stop)
        if _offset(zone, step) != out[-1][1]:
            lo, hi = t, step  # lo has the current offset, hi the next
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _offset(zone, mid) == out[-1][1]:
                    lo = mid
                else:
                    hi = mid
            out.append((hi, _offset(zone, hi)))
        t = step
    return [(datetime.fromtimestamp(e, UTC), offset) for e, offset in out]
