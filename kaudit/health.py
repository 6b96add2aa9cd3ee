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
lists checks that fail whatever their severity), else 0; unreadable input is exit 2. The
:class:`AuditResult` holds that verdict (``passed``, ``verdict``, ``exit_code``); its renderers
(``report/audit.py``) only show it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import views
from .checkpoint import DEFAULT_BLOCK_ELEMS, Checkpoint, Variable
from .policy import resolve
from .schema import AUDIT_SEVERITIES as SEVERITIES
from .stats import summarize


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
    """What ``kaudit audit`` found. The verdict is computed here, once, from the findings, the
    policy's ``fail_on`` and ``strict``; every renderer and the exit code show this one."""

    file: str
    format: str
    n_variables: int
    total_params: int
    findings: tuple[Finding, ...]
    fail_on: tuple[str, ...] = field(default=())
    strict: bool = False
    #: The policy applied: ``description`` (``Policy.describe(audit=True)``), ``source``, ``fail_on``.
    policy: dict = field(default_factory=dict)

    def fails(self, finding: Finding) -> bool:
        """An ``error``; with ``strict`` a ``warning`` too; any finding of a ``fail_on`` check."""
        return (
            finding.severity == "error"
            or (self.strict and finding.severity == "warning")
            or finding.check in self.fail_on
        )

    @property
    def failing(self) -> list[Finding]:
        return [f for f in self.findings if self.fails(f)]

    @property
    def passed(self) -> bool:
        return not self.failing

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def counts(self) -> dict:
        return {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES}

    def to_dict(self) -> dict:
        return views.render("audit_dict", self)

    def render(self, fmt: str = "table") -> str:
        """The report as text (``table``, ``markdown``, ``json``): ``kaudit/report/audit.py``."""
        return views.render("audit", self, fmt)

    def __str__(self) -> str:
        return self.render("table")


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


def audit(
    source, *, max_abs: float = 1e4, fail_on: tuple[str, ...] = (), policy=None, strict: bool = False
) -> AuditResult:
    """Health checks of a checkpoint (path or Checkpoint). A finding fails the audit when it is an
    ``error``, a ``warning`` with ``strict``, or of a check listed in ``fail_on`` or in the policy's
    ``fail_on``. ``policy`` is resolved as for :func:`kaudit.diff` (``None``: discovered from the
    working directory like the command line; ``False``: none; a Policy, mapping or path)."""
    from .readers import opened

    pol = resolve(policy)
    fails = tuple(dict.fromkeys((*fail_on, *pol.fail_on)))
    with np.errstate(all="ignore"), opened(source) as ckpt:
        findings: list[Finding] = []
        mv = ckpt.model_variables
        for v in mv:
            s = summarize(ckpt, v)
            if s.nan or s.inf:
                findings.append(
                    Finding("nan_inf", "error", v.path, f"{s.nan} NaN and {s.inf} Inf of {v.params:,} values")
                )
            if v.name == "moving_variance" and (s.min is not None and s.min <= 0):
                n_bad = int(sum(int((b <= 0).sum()) for b in ckpt.iter_blocks(v)))
                findings.append(
                    Finding(
                        "bn_variance",
                        "error",
                        v.path,
                        f"{n_bad} of {v.params:,} moving variances <= 0 (min {s.min:.4g})",
                    )
                )
            peak = max(abs(s.min), abs(s.max)) if s.min is not None and s.max is not None else 0.0
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
            findings.append(
                Finding(
                    "optimizer_state",
                    "info",
                    None,
                    f"{len(opt)} optimizer/metric variables ({n:,} values) saved in the file",
                )
            )
        unknown = [v for v in mv if v.trainable is None]
        if unknown:
            findings.append(
                Finding(
                    "trainable_unknown",
                    "info",
                    None,
                    f"trainability unknown for {len(unknown)} of {len(mv)} variables"
                    + ("" if ckpt.has_config else " (no model config in the file)"),
                )
            )
        positional = [v for v in mv if not v.named]
        if positional:
            findings.append(
                Finding(
                    "positional_names",
                    "info",
                    None,
                    f"{len(positional)} variables named by position (layer classes unknown to kaudit)",
                )
            )
        order = {s: i for i, s in enumerate(SEVERITIES)}
        findings.sort(key=lambda f: order[f.severity])
        return AuditResult(
            ckpt.file,
            ckpt.format,
            len(mv),
            ckpt.totals.total,
            tuple(findings),
            fails,
            strict,
            {"description": pol.describe(audit=True), "source": pol.source, "fail_on": list(pol.fail_on)},
        )
