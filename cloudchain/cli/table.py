"""Plain-text output for people: aligned tables and labelled fields.

Scripts should use `--json`; these shapes may change to read better.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

COLUMN_GAP = "  "


def format_table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], right: Collection[int] = ()
) -> str:
    """Columns padded to their widest cell, headers first; the columns whose indexes are
    in `right` (numbers) are right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    assert all(len(row) == len(headers) for row in cells), "every row has a cell per header"
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        padded = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append(COLUMN_GAP.join(padded).rstrip())
    return "\n".join(lines)


def format_fields(fields: Sequence[tuple[str, object]]) -> str:
    """One `label  value` line per field, the values aligned."""
    width = max((len(label) for label, _ in fields), default=0)
    return "\n".join(f"{label.ljust(width)}{COLUMN_GAP}{value}".rstrip() for label, value in fields)
