"""Baselines without storing the checkpoint: ``kaudit snapshot FILE -o baseline.json``.

A snapshot keeps, per variable, the path, shape, dtype, trainable flag, a sha256 of the values
and summary statistics (min, max, mean, std, L2 norm, NaN and Inf counts): a few KB per hundred
variables, small enough for git. ``kaudit diff baseline.json new.h5`` then compares what can be
proven (docs/metrics.md):

* identity, exactly, by hash (so ``frozen`` rules work bit for bit);
* difference: a different hash means different bytes. Closeness needs the values: a permutation
  keeps every statistic, so statistics never pass a pair that is not identical. They only bound
  ``max_abs`` from below (:func:`max_abs_at_least`), which can prove a change;
* structure and trainability as usual.

``kaudit snapshot --values`` also stores the values (zlib-compressed, ``readers/snapshot.py``),
up to ``MAX_BYTES`` in all: such a snapshot compares element by element, like the file.

This module writes snapshots; ``readers/snapshot.py`` reads them back as a checkpoint, and
``snapshot_compare.py`` compares a pair where a side has no values.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zlib

from ._version import __version__
from .checkpoint import Checkpoint, Variable
from .errors import UsageError
from .readers.snapshot import COUNT_KEYS, MAX_BYTES, STAT_KEYS, VALUES_ENCODING, value_dtype
from .schema import SNAPSHOT_VERSION
from .stats import digest, summarize, value_bytes

SNAPSHOT_FORMAT = "kaudit-snapshot"


def snapshot(source, *, optimizer: bool = False, values: bool = False) -> dict:
    """The snapshot document of a checkpoint (path or Checkpoint) as a JSON-ready dict; with
    ``values=True`` the values too (refused, ``UsageError``, beyond ``MAX_BYTES``)."""
    from .readers import opened

    with opened(source) as ckpt:
        rows = []
        size = 0
        for v in ckpt.select(optimizer):
            s = summarize(ckpt, v)
            row = {
                "path": v.path,
                "layer": v.layer,
                "layer_class": v.layer_class,
                "name": v.name,
                "shape": list(v.shape),
                "dtype": v.dtype,
                "trainable": v.trainable,
                "kind": v.kind,
                "named": v.named,
                "sha256": None,
                **{k: getattr(s, k) for k in (*STAT_KEYS, *COUNT_KEYS)},
            }
            if values:
                row["sha256"], row["data"] = _packed(ckpt, v)
                # the whole document counts: this row as `kaudit snapshot` writes it (indented less) and more
                size += len(json.dumps(row, indent=2, default=str)) + 16
                if size > MAX_BYTES - 4096:
                    raise UsageError(
                        f"--values: the values of {ckpt.file} take more than {MAX_BYTES >> 20} MiB, "
                        "the most a snapshot may hold",
                        hint="diff against the checkpoint itself, or snapshot without --values",
                    )
            else:
                row["sha256"] = digest(ckpt, v)
            rows.append(row)
        t = ckpt.totals
        doc = {
            "format": SNAPSHOT_FORMAT,
            "version": SNAPSHOT_VERSION,
            "kaudit_version": __version__,
            "file": os.path.basename(ckpt.file),
            "source_format": ckpt.format,
            "keras_version": ckpt.keras_version,
            "has_config": ckpt.has_config,
            "totals": t.as_dict(),
        }
        if values:
            doc["values"] = VALUES_ENCODING
        doc["variables"] = rows
        return doc


def _packed(ckpt: Checkpoint, v: Variable) -> tuple[str, str]:
    """(sha256, base64 of the zlib-compressed value bytes) in one streamed pass."""
    try:
        value_dtype(v.dtype)
    except (TypeError, ValueError):
        raise UsageError(
            f"--values: {v.path!r} has dtype {v.dtype}, whose values a snapshot cannot hold", path=ckpt.file
        ) from None
    h = hashlib.sha256()
    deflate = zlib.compressobj(6)
    parts = []
    for chunk in value_bytes(ckpt, v):
        h.update(chunk)
        parts.append(deflate.compress(chunk))
    parts.append(deflate.flush())
    return h.hexdigest(), base64.b64encode(b"".join(parts)).decode("ascii")
