"""UTCTimestamp (FIX data type) formatting and parsing.

FIX 4.0 and 4.1 define UTCTimestamp to whole seconds (``YYYYMMDD-HH:MM:SS``); FIX 4.2 and
later allow milliseconds, and FIX 4.4 and later finer fractions. The gateway sends
milliseconds from FIX 4.2 on and accepts any fraction inbound.
"""

from __future__ import annotations

import calendar
import time

_SECONDS_ONLY = frozenset({"FIX.4.0", "FIX.4.1"})

# Formatting the date and time part is most of the cost, so the string of the current
# second is cached and only the milliseconds are appended per message.
_cached_second = -1
_cached_prefix = ""


def format_utc_timestamp(ts_us: int, begin_string: str = "FIX.4.4") -> str:
    """Format microseconds since the epoch as a FIX UTCTimestamp for ``begin_string``."""
    global _cached_second, _cached_prefix
    second, micros = divmod(ts_us, 1_000_000)
    if second != _cached_second:
        _cached_prefix = time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(second))
        _cached_second = second
    if begin_string in _SECONDS_ONLY:
        return _cached_prefix
    return f"{_cached_prefix}.{micros // 1000:03d}"


def parse_utc_timestamp(value: str) -> int:
    """Parse a FIX UTCTimestamp into microseconds since the epoch.

    Raises ValueError naming the value when it is not ``YYYYMMDD-HH:MM:SS[.fff...]``.
    """
    if len(value) < 17 or value[8] != "-" or value[11] != ":" or value[14] != ":":
        raise ValueError(f"invalid UTCTimestamp {value!r}: expected YYYYMMDD-HH:MM:SS[.sss]")
    try:
        year, month, day = int(value[0:4]), int(value[4:6]), int(value[6:8])
        hour, minute, sec = int(value[9:11]), int(value[12:14]), int(value[15:17])
        fraction = value[18:] if len(value) > 17 else ""
        if len(value) > 17 and (value[17] != "." or not fraction.isdigit()):
            raise ValueError
        micros = int((fraction + "000000")[:6]) if fraction else 0
    except ValueError:
        raise ValueError(
            f"invalid UTCTimestamp {value!r}: expected YYYYMMDD-HH:MM:SS[.sss]"
        ) from None
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59 and sec <= 60):
        raise ValueError(f"invalid UTCTimestamp {value!r}: a date or time part is out of range")
    seconds = calendar.timegm((year, month, day, hour, minute, sec, 0, 0, 0))
    return seconds * 1_000_000 + micros
