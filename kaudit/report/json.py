"""JSON documents (schema in docs/api.md). Non-finite numbers become the strings "inf", "-inf"
and "nan", so every document is strict JSON."""

from __future__ import annotations

import json
import math

from .._version import __version__


def clean(x):
    """numpy scalars -> Python, non-finite floats -> strings, recursively."""
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        try:
            x = x.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
    return x


def diff_dict(result) -> dict:
    return clean(
        {
            "kaudit_version": __version__,
            "a": {"file": result.file_a, "format": result.format_a},
            "b": {"file": result.file_b, "format": result.format_b},
            "passed": result.passed,
            "verdict": result.verdict,
            "summary": result.summary,
            "failures": list(result.failures),
            "notes": list(result.notes),
            "policy": result.policy,
            "montages": list(result.montages),
            "variables": [r._asdict() for r in result.records],
        }
    )


def diff_json(result) -> str:
    return json.dumps(diff_dict(result), indent=2, allow_nan=False) + "\n"


def inspect_dict(result) -> dict:
    return clean(
        {
            "kaudit_version": __version__,
            "file": result.file,
            "format": result.format,
            "keras_version": result.keras_version,
            "has_config": result.has_config,
            "totals": result.totals.as_dict(),
            "notes": list(result.notes),
            "variables": list(result.records),
        }
    )


def inspect_json(result) -> str:
    return json.dumps(inspect_dict(result), indent=2, allow_nan=False) + "\n"
