"""A ``kaudit snapshot`` baseline read back as a Checkpoint.

Without values (the default) it knows each variable's sha256 and summary statistics: enough to
prove identity and difference, never closeness (``baseline.compare_without_values``). Written with
``--values`` it also holds the values (``"values": "zlib-base64"``: per variable, ``data`` is the
base64 of the zlib-compressed little-endian C-order values, bfloat16 widened to float32, the bytes
the sha256 is taken of), and compares like the file it was taken from.

The document is untrusted input like any checkpoint: it is read whole only up to ``MAX_BYTES``
(``readers._load_json``), every field is checked when it is loaded, and values are decoded one
variable at a time, never inflated past the size the variable's shape and dtype declare, and
checked against their sha256 before use. No pickle, no numpy format: plain JSON.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import zlib
from collections.abc import Iterator

import numpy as np

from ..checkpoint import Checkpoint, Variable
from ..errors import CorruptFileError, KauditError
from ..schema import SNAPSHOT_VERSION

#: ``values`` of a snapshot that holds values: the only encoding there is.
VALUES_ENCODING = "zlib-base64"
#: The most a snapshot may hold: every JSON input is read up to 64 MiB (``readers._load_json``).
MAX_BYTES = 64 << 20
STAT_KEYS = ("min", "max", "mean", "std", "l2")
COUNT_KEYS = ("nan", "inf")


def value_dtype(dtype: str) -> np.dtype:
    """The little-endian numpy dtype of a variable's values as kaudit reads them (bfloat16 is
    widened to float32); ValueError for anything but bool, integer and float."""
    dt = np.dtype("float32" if dtype == "bfloat16" else dtype)
    if dt.kind not in "biuf":
        raise ValueError(f"dtype {dtype!r} has no values kaudit stores")
    return dt.newbyteorder("<")


class SnapshotStore:
    """Each variable's hash and statistics; its values too when the snapshot holds them."""

    def __init__(self, rows: dict[str, dict], display: str, has_values: bool):
        self._rows = rows
        self._display = display
        self.has_values = has_values

    def digest(self, var: Variable) -> str:
        return self._rows[var.location]["sha256"]

    def stats(self, var: Variable) -> dict:
        return self._rows[var.location]

    def read(self, var: Variable, selection: tuple = ()) -> np.ndarray:
        return self._values(var).reshape(var.shape)[selection]

    def iter_blocks(self, var: Variable, block_elems: int) -> Iterator[np.ndarray]:
        flat = self._values(var)
        for start in range(0, flat.size, block_elems):
            yield flat[start : start + block_elems]

    def _values(self, var: Variable) -> np.ndarray:
        if not self.has_values:
            raise KauditError(
                f"{var.path!r}: a snapshot without values keeps hashes and statistics",
                path=self._display,
                hint="compare against the checkpoint, or a snapshot written with --values",
            )
        dtype = value_dtype(var.dtype)
        expected = var.params * dtype.itemsize
        text = self._rows[var.location]["data"]

        def corrupt(what: str) -> CorruptFileError:
            return CorruptFileError(
                f"the stored values of {var.path!r} {what}",
                path=self._display,
                hint="re-create it with: kaudit snapshot FILE --values -o SNAPSHOT",
            )

        # zlib adds at most 5 bytes per 16 KiB block and 6 overall; base64 4 characters per 3 bytes
        if len(text) > 4 * ((expected + 5 * (expected // 16384 + 1) + 6 + 2) // 3):
            raise corrupt(f"take {len(text):,} characters, more than {expected:,} bytes can need")
        try:
            packed = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise corrupt("are not base64") from None
        inflate = zlib.decompressobj()
        try:
            data = inflate.decompress(packed, expected + 1)  # never more than one byte too many
        except zlib.error as exc:
            raise corrupt(f"are not zlib data ({exc})") from None
        if len(data) != expected or not inflate.eof or inflate.unused_data:
            size = f"more than {expected:,}" if len(data) > expected else f"{len(data):,}"
            raise corrupt(f"hold {size} bytes, not the {expected:,} bytes of shape {list(var.shape)} {var.dtype}")
        if hashlib.sha256(data).hexdigest() != self._rows[var.location]["sha256"]:
            raise corrupt("do not match their sha256")
        return np.frombuffer(bytearray(data), dtype)

    def close(self) -> None:
        pass


def load(path: str, display: str, doc: dict) -> Checkpoint:

    if doc.get("version") != SNAPSHOT_VERSION:
        raise CorruptFileError(
            f"snapshot version {doc.get('version')!r} is not supported (expected {SNAPSHOT_VERSION})",
            path=display,
            hint="re-create it with this kaudit: kaudit snapshot FILE -o baseline.json",
        )
    encoding = doc.get("values")
    if encoding not in (None, VALUES_ENCODING):
        raise CorruptFileError(
            f"snapshot values are encoded as {str(encoding)[:40]!r}, not {VALUES_ENCODING!r}", path=display
        )
    has_values = encoding is not None
    raw = doc.get("variables")
    if not isinstance(raw, list):
        raise CorruptFileError("snapshot has no 'variables' list", path=display)
    variables, rows = [], {}
    for i, r in enumerate(raw):
        try:
            v = Variable(
                path=str(r["path"]),
                layer=str(r.get("layer", "")),
                layer_class=r.get("layer_class"),
                name=str(r.get("name", str(r["path"]).rsplit("/", 1)[-1])),
                shape=tuple(int(d) for d in r["shape"]),
                dtype=str(r["dtype"]),
                trainable=r.get("trainable"),
                kind=str(r.get("kind", "model")),
                location=f"snapshot[{i}]",
                named=bool(r.get("named", True)),
            )
            row = _checked_row(r, v, has_values)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CorruptFileError(f"snapshot variable #{i} is malformed ({str(exc)[:200]})", path=display) from None
        variables.append(v)
        rows[v.location] = row
    note = (
        "values stored in the snapshot (zlib, checked against their sha256)"
        if has_values
        else "a snapshot without values: identity and difference are proven by sha256, closeness cannot be"
    )
    return Checkpoint(
        display,
        "kaudit-snapshot",
        tuple(variables),
        SnapshotStore(rows, display, has_values),
        doc.get("keras_version"),
        bool(doc.get("has_config")),
        (note,),
        (display,),
    )


def _checked_row(r: dict, v: Variable, has_values: bool) -> dict:
    """The fields kaudit uses, checked: a sha256, numbers (or None) for the statistics, counts."""
    if any(d < 0 for d in v.shape):
        raise ValueError(f"shape {list(v.shape)}")
    sha = r["sha256"]
    if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ValueError("sha256 is not 64 hex digits")
    row: dict[str, object] = {"sha256": sha}
    for k in STAT_KEYS:
        num = _number(r.get(k), k)
        if k in ("min", "max") and num is not None and not math.isfinite(num):
            raise ValueError(f"{k} is not finite (it is taken over the finite values)")
        row[k] = num
    for k in COUNT_KEYS:
        x = r.get(k)
        if x is not None and (isinstance(x, bool) or not isinstance(x, int) or not 0 <= x <= v.params):
            raise ValueError(f"{k} is not a count")
        row[k] = x
    if has_values:
        value_dtype(v.dtype)
        if not isinstance(r.get("data"), str):
            raise ValueError("no 'data' (the values) in a snapshot with values")
        row["data"] = r["data"]
    return row


def _number(x, key: str) -> float | None:
    if x is None:
        return None
    if isinstance(x, str) and x in ("inf", "-inf", "nan"):  # how kaudit's JSON writes non-finite numbers
        return float(x)
    if isinstance(x, bool) or not isinstance(x, (int, float)) or (isinstance(x, float) and math.isnan(x)):
        raise ValueError(f"{key} is not a number")
    return float(x)
