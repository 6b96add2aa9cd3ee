"""``kaudit audit FILE``: health checks of one checkpoint, with the diff's exit-code contract.

Checks (docs/audit.md), each finding with a severity:

==================  ========  ==========================================================
check               severity  finding
==================  ========  ==========================================================
nan_inf             error     NaN or Inf anywhere in a model variable
bn_variance         error     BatchNormalization moving_variance <= 0
dead_units          warning   all-zero conv filters (output channels) or Dense units
extreme             warning   values with |x| above ``max_abs`` (default 1e4)
mixed_dtypes        info      model variables of more than one floating dtype
optimizer_state     info      optimizer state saved in the file (size)
trainable_unknown   info      trainability cannot be known (no config / custom layers)
positional_names    info      variables named by position (unknown layer classes)
==================  ========  ==========================================================

Exit 1 when an ``error`` is found (``--strict``: a ``warning`` too; a policy's ``fail_on``
lists checks that fail whatever their severity), else 0; unreadable input is exit 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import views
from .checkpoint import DEFAULT_BLOCK_ELEMS, Checkpoint, Variable
from .stats import summarize

SEVERITIES = ("error", "warning", "info")
CHECKS = ("nan_inf", "bn_variance", "dead_units", "extreme", "mixed_dtypes", "optimizer_state",
          "trainable_unknown", "positional_names")


@dataclass(frozen=True)
class Finding:
    check: str
    severity: str
    path: str | None
    message: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class AuditResult:
    file: str
    format: str
    n_variables: int
    total_params: int
    findings: tuple[Finding, ...]
    fail_on: tuple[str, ...] = field(default=())

    def failing(self, strict: bool = False) -> list[Finding]:
        bad = {"error", "warning"} if strict else {"error"}
        return [f for f in self.findings if f.severity in bad or f.check in self.fail_on]

    def passed(self, strict: bool = False) -> bool:
        return not self.failing(strict)

    def exit_code(self, strict: bool = False) -> int:
        return 0 if self.passed(strict) else 1

    def counts(self) -> dict:
        return {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES}

    def render(self, fmt: str = "table") -> str:
        """The report as text (``table``, ``markdown``, ``json``): ``kaudit/report/audit.py``."""
        return views.render("audit", self, fmt)


def _is_conv_kernel(v: Variable) -> bool:
    return v.ndim in (3, 4, 5) and v.name in ("kernel", "pointwise_kernel")


def _zero_units(ckpt: Checkpoint, v: Variable) -> tuple[int, int]:
    """(all-zero output units, units) along the last axis, streamed in whole rows."""
    units = v.shape[-1]
    if units == 0 or v.params == 0:
        return 0, units
    block = max(units, (DEFAULT_BLOCK_ELEMS // units) * units)
    alive = np.zeros(units, dtype=bool)
    for b in ckpt.iter_blocks(v, block):
        if b.size % units:
            return 0, units  # cannot align rows (huge rows split): skip rather than guess
        alive |= (b.reshape(-1, units) != 0).any(axis=0)
    return int(units - alive.sum()), units


def audit(source, *, max_abs: float = 1e4, fail_on: tuple[str, ...] = ()) -> AuditResult:
    """Health checks of a checkpoint (path or Checkpoint)."""
    from .readers import opened

    with opened(source) as ckpt:
        findings: list[Finding] = []
        mv = ckpt.model_variables
        for v in mv:
            s = summarize(ckpt, v)
            if s.nan or s.inf:
                findings.append(Finding("nan_inf", "error", v.path, f"{s.nan} NaN and {s.inf} Inf of {v.params:,} values"))
            if v.name == "moving_variance" and (s.min is not None and s.min <= 0):
                n_bad = int(sum(int((b <= 0).sum()) for b in ckpt.iter_blocks(v)))
                findings.append(Finding("bn_variance", "error", v.path,
                                        f"{n_bad} of {v.params:,} moving variances <= 0 (min {s.min:.4g})"))
            peak = max(abs(s.min), abs(s.max)) if s.min is not None else 0.0
            if peak > max_abs and math.isfinite(peak):
                findings.append(Finding("extreme", "warning", v.path, f"max |x| = {peak:.4g} > {max_abs:g}"))
            if (_is_conv_kernel(v) or (v.ndim == 2 and v.name == "kernel")) and v.dtype != "bool":
                dead, units = _zero_units(ckpt, v)
                if dead:
                    kind = "conv filter(s)" if v.ndim >= 3 else "Dense unit(s)"
                    findings.append(Finding("dead_units", "warning", v.path, f"{dead} of {units} {kind} all zero"))
        floats = sorted({v.dtype for v in mv if v.dtype.startswith(("float", "bfloat"))})
        if len(floats) > 1:
            findings.append(Finding("mixed_dtypes", "info", None, f"model variables in {', '.join(floats)}"))
        opt = ckpt.optimizer_variables
        if opt:
            n = sum(v.params for v in opt)
            findings.append(Finding("optimizer_state", "info", None,
                                    f"{len(opt)} optimizer/metric variables ({n:,} values) saved in the file"))
        unknown = [v for v in mv if v.trainable is None]
        if unknown:
            findings.append(Finding("trainable_unknown", "info", None,
                                    f"trainability unknown for {len(unknown)} of {len(mv)} variables"
                                    + ("" if ckpt.has_config else " (no model config in the file)")))
        positional = [v for v in mv if not v.named]
        if positional:
            findings.append(Finding("positional_names", "info", None,
                                    f"{len(positional)} variables named by position (layer classes unknown to kaudit)"))
        order = {s: i for i, s in enumerate(SEVERITIES)}
        findings.sort(key=lambda f: order[f.severity])
        return AuditResult(ckpt.file, ckpt.format, len(mv), ckpt.totals.total, tuple(findings), tuple(fail_on))
