import pytest

from cloudchain.timefmt import TimeFormatError, format_rfc3339_ns, parse_rfc3339_ns


@pytest.mark.parametrize(
    "text, ns",
    [
        ("1970-01-01T00:00:00Z", 0),
        ("2026-01-01T00:00:00.000000000Z", 1_767_225_600_000_000_000),
        ("2026-01-01T00:00:00.123456789Z", 1_767_225_600_123_456_789),
        ("2026-01-01T01:00:00.5+01:00", 1_767_225_600_500_000_000),
    ],
)
def test_parse(text, ns):
    assert parse_rfc3339_ns(text) == ns


def test_format_round_trips_nanoseconds():
    ns = 1_767_225_600_123_456_789
    assert format_rfc3339_ns(ns) == "2026-01-01T00:00:00.123456789Z"
    assert parse_rfc3339_ns(format_rfc3339_ns(ns)) == ns


@pytest.mark.parametrize("text", ["", "2026-01-01", "2026-13-01T00:00:00Z", "yesterday", 5])
def test_bad_timestamps_are_clear_errors(text):
    with pytest.raises(TimeFormatError):
        parse_rfc3339_ns(text)
