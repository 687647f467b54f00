"""RFC 3339 timestamps with nanoseconds, to and from integer nanoseconds since the epoch.

Block time is an integer number of nanoseconds (UTC). CometBFT shows times as
RFC 3339 with up to nine fractional digits; `datetime` carries only six, so the
fraction is handled here by hand.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_NS_PER_S = 1_000_000_000
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})$"
)


class TimeFormatError(ValueError):
    """A timestamp string is not RFC 3339."""


def parse_rfc3339_ns(text: str) -> int:
    """Parse an RFC 3339 timestamp into integer nanoseconds since the Unix epoch."""
    if not isinstance(text, str):
        raise TimeFormatError(f"timestamp must be a string, got {type(text).__name__}")
    match = _RFC3339.match(text)
    if match is None:
        raise TimeFormatError(
            f"{text!r} is not an RFC 3339 timestamp (e.g. 2026-01-01T00:00:00.000000000Z)"
        )
    date, clock, fraction, offset = match.groups()
    zone = "+00:00" if offset in ("Z", "z") else offset
    try:
        whole = datetime.fromisoformat(f"{date}T{clock}{zone}")
    except ValueError as exc:
        raise TimeFormatError(f"{text!r}: {exc}") from None
    seconds = int(whole.timestamp())
    nanos = int((fraction or "0").ljust(9, "0"))
    return seconds * _NS_PER_S + nanos


def format_rfc3339_ns(time_ns: int) -> str:
    """Format integer nanoseconds since the epoch as RFC 3339 UTC with nine digits."""
    seconds, nanos = divmod(time_ns, _NS_PER_S)
    whole = datetime.fromtimestamp(seconds, tz=UTC)
    return whole.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"
