"""CSV: a header row, then one row per record (missing values empty)."""

from __future__ import annotations


def to_csv(columns, records) -> str:
    """CSV with a header row; missing values empty, sequences as text (``(3, 3, 1, 8)``), text
    cells with non-printable characters escaped (``_fmt.text``)."""
    import csv
    import io
    import math

    from ._fmt import text

    def cell(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        if isinstance(v, (list, tuple)):
            return "(" + ", ".join(str(x) for x in v) + ("," if len(v) == 1 else "") + ")"
        if isinstance(v, str):
            return text(v)
        return v

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in records:
        w.writerow([cell(r.get(c)) for c in columns])
    return buf.getvalue()
