"""A training run as one picture: ``kaudit trend CKPT...``.

Each checkpoint of a run is compared with the previous one and with the first, by
:func:`kaudit.compare.diff` itself (the same alignment, statistics and policy), so every step of
a trend is exactly the pairwise ``kaudit diff`` of its two files. Checkpoints are opened one
after the other: at most three are open at once (the first, the previous, the current), and
their values stream block by block, so memory holds no run's tensors beyond a block. The norm of
every variable in every checkpoint comes from the same streamed statistics as ``inspect``.

With a policy (a policy file, or tolerances), every step is gated: a run passes when every
checkpoint is within the policy against the previous one and against the first (a frozen layer
stays bit-identical through the whole run). Without one, the trend only measures (exit 0).
"""

from __future__ import annotations

import contextlib
import glob
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import views
from .checkpoint import DEFAULT_BLOCK_ELEMS
from .compare import diff
from .errors import UsageError
from .paths import layer_of
from .policy import Policy
from .result import DiffResult
from .schema import TREND_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

#: File names a run directory's checkpoints have (a TF checkpoint is named by its ``.index``).
RUN_SUFFIXES = (".h5", ".hdf5", ".keras", ".weights.json", ".json", ".index")


def natural_key(text: str) -> list:
    """Sort key reading digit runs as numbers: ``epoch.51`` before ``epoch.110``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def run_members(sources: list[str], order: str = "natural") -> list[str]:
    """The checkpoints of a run, in order: the files given (globs expanded), or the checkpoints of
    one directory (files with a checkpoint's suffix, TF checkpoint prefixes, sub-directories);
    ordered naturally (epoch numbers in the names), or as given (``order="given"``)."""
    if order not in ("natural", "given"):
        raise UsageError(f"unknown order {order!r}", hint="choose natural or given")
    out: list[str] = []
    for s in sources:
        s = os.fspath(s)
        if not os.path.exists(s) and any(c in s for c in "*?["):
            found = glob.glob(s)
            if not found:
                raise UsageError(f"no checkpoint matches {s!r}")
            out += sorted(found, key=natural_key)
        else:
            out.append(s)
    if len(out) == 1 and os.path.isdir(out[0]) and not _is_checkpoint_dir(out[0]):
        d = out[0]
        found = []
        for name in os.listdir(d):
            full = os.path.join(d, name)
            if name.startswith(".") or name.endswith(".truth.json"):
                continue
            if os.path.isdir(full):
                found.append(full)
            elif name.endswith(".index"):
                found.append(full[: -len(".index")])
            elif name.endswith(RUN_SUFFIXES):
                found.append(full)
        out = sorted(found, key=natural_key)
    elif order == "natural":
        out = sorted(out, key=lambda p: natural_key(os.path.basename(os.path.normpath(p))))
    if len(out) < 2:
        raise UsageError(
            f"a trend needs at least two checkpoints, got {len(out)}",
            hint="give two or more files, a glob, or a directory of checkpoints",
        )
    return out


def _is_checkpoint_dir(path: str) -> bool:
    """A directory that is itself one checkpoint (SavedModel, TF checkpoint directory)."""
    names = set(os.listdir(path))
    return (
        "saved_model.pb" in names
        or "checkpoint" in names
        or "variables" in names
        or any(n.endswith(".index") for n in names)
    )


def _common_prefix(names: list[str]) -> str:
    """The characters all ``names`` start with (of strings, not of paths: labels cut inside names)."""
    if not names:
        return ""
    first, last = min(names), max(names)
    k = 0
    while k < min(len(first), len(last)) and first[k] == last[k]:
        k += 1
    return first[:k]


def labels_of(files: list[str]) -> list[str]:
    """Short names for the checkpoints: the base names without the part they all share at the
    start and at the end (never cutting a number in two); the whole name where nothing is left."""
    names = [os.path.basename(os.path.normpath(f)) for f in files]
    if len(set(names)) < len(names):
        names = [os.path.normpath(f) for f in files]
    prefix = _common_prefix(names)
    prefix = re.sub(r"\d+$", "", prefix)
    rev = [n[len(prefix) :][::-1] for n in names]
    suffix = _common_prefix(rev)[::-1]
    suffix = re.sub(r"^\d+", "", suffix)
    out = []
    for n in names:
        core = n[len(prefix) : len(n) - len(suffix)] if suffix else n[len(prefix) :]
        out.append(core.strip("._-") or n)
    return out if len(set(out)) == len(out) else names


Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class TrendResult:
    """What ``kaudit trend`` found. ``steps[i]`` is the diff of checkpoint i against checkpoint
    i - 1 and ``from_first[i]`` against checkpoint 0 (both None for i = 0); ``norms[i]`` maps each
    variable path of checkpoint i to its L2 norm."""

    files: tuple[str, ...]
    labels: tuple[str, ...]
    steps: tuple[DiffResult | None, ...] = field(repr=False)
    from_first: tuple[DiffResult | None, ...] = field(repr=False)
    norms: tuple[dict, ...] = field(repr=False)
    #: Whether a policy gates the run (else the trend only measures, exit 0).
    gated: bool = False
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.gated or all(d.passed for d in self.steps[1:] + self.from_first[1:] if d is not None)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    @property
    def verdict(self) -> str:
        if not self.gated:
            return "MEASURED"
        return "PASS" if self.passed else "FAIL"

    @property
    def failures(self) -> tuple[str, ...]:
        """Every failure of every gated step, prefixed with the step (``51-0.63 vs previous: ...``)."""
        if not self.gated:
            return ()
        out = []
        for i in range(1, len(self.files)):
            for what, d in (("vs previous", self.steps[i]), ("vs first", self.from_first[i])):
                if d is not None:
                    out += [f"{self.labels[i]} {what}: {f}" for f in d.failures]
        return tuple(out)

    def paths(self) -> list[str]:
        """Every variable path of the run in model order (the first checkpoint's, then any that
        appear later, where they appear)."""
        seen: dict[str, None] = {}
        for d in self.steps[1:]:
            for r in d.records if d is not None else ():
                seen.setdefault(_key(r), None)
        return list(seen)

    def records(self) -> list[dict]:
        """One dict per (checkpoint, variable) with TREND_COLUMNS."""
        out = []
        paths = self.paths()
        for i, f in enumerate(self.files):
            step, since = self.steps[i], self.from_first[i]
            prev = {_key(r): r for r in step.records} if step is not None else {}
            first = {_key(r): r for r in since.records} if since is not None else {}
            for p in paths:
                rp, rf = prev.get(p), first.get(p)
                if i and rp is None and rf is None:
                    continue
                if i == 0 and p not in self.norms[0]:
                    continue
                out.append(
                    {
                        "step": i,
                        "checkpoint": self.labels[i],
                        "file": f,
                        "path": p,
                        "layer": layer_of(p) or p,
                        "norm": self.norms[i].get(p),
                        "rel_change_prev": None if rp is None else rp.rel_change,
                        "rel_change_first": None if rf is None else rf.rel_change,
                        "max_abs_prev": None if rp is None else rp.max_abs,
                        "max_abs_first": None if rf is None else rf.max_abs,
                        "status_prev": None if rp is None else rp.status,
                        "status_first": None if rf is None else rf.status,
                        "passed": None
                        if i == 0 or not self.gated
                        else bool((rp is None or rp.passed) and (rf is None or rf.passed)),
                    }
                )
        return out

    @property
    def table(self) -> pd.DataFrame:
        """The long table: one row per variable and checkpoint, TREND_COLUMNS."""
        import pandas as pd

        return pd.DataFrame(self.records(), columns=list(TREND_COLUMNS))

    def matrix(self, value: str = "rel_change_prev", by: str = "layer") -> pd.DataFrame:
        """Layers (or variables, ``by="variable"``) down, checkpoints across: ``value`` is a
        column of the table (``rel_change_prev``, ``rel_change_first``, ``norm``, ...). A layer's
        relative change is the largest of its variables'; its norm the L2 norm of all of them."""
        import pandas as pd

        grid = self.grid(value, by)
        return pd.DataFrame([row for _name, row in grid], index=[n for n, _r in grid], columns=list(self.labels))

    def grid(self, value: str = "rel_change_prev", by: str = "layer") -> list[tuple[str, list]]:
        """:meth:`matrix` as plain data: (name, one value or None per checkpoint), model order."""
        key = (lambda p: p) if by == "variable" else (lambda p: layer_of(p) or p)
        cells: dict[str, list] = {}
        for rec in self.records():
            row = cells.setdefault(key(rec["path"]), [[] for _ in self.files])
            x = rec[value]
            if x is not None and not (isinstance(x, float) and math.isnan(x)):
                row[rec["step"]].append(x)
        out = []
        for name, row in cells.items():
            if value == "norm":
                vals = [math.sqrt(sum(v * v for v in c)) if c else None for c in row]
            elif all(isinstance(v, (int, float)) for c in row for v in c):
                vals = [max(c) if c else None for c in row]
            else:
                vals = [c[0] if c else None for c in row]
            out.append((name, vals))
        return out

    def to_dict(self) -> dict:
        return views.render("trend_dict", self)

    def render(self, fmt: str = "table", **kw) -> str:
        return views.render("trend", self, fmt, **kw)

    def __str__(self) -> str:
        return self.render("table")


def _key(r) -> str:
    """A trend row's variable: its path in the later checkpoint (b), else in a."""
    return str(r.path_b) if r.path_b is not None else str(r.path)


def trend(
    sources,
    *,
    order: str = "natural",
    policy: Policy | None = None,
    gate: bool | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    tol=(),
    ignore=(),
    optimizer: bool = False,
    block_elems: int = DEFAULT_BLOCK_ELEMS,
    progress: Progress | None = None,
    on_checkpoint: Callable[[int, str], None] | None = None,
) -> TrendResult:
    """Compare every checkpoint of a run with the previous one and with the first.

    ``sources``: paths (or globs, or one directory) of the run's checkpoints, put in ``order``
    (see :func:`run_members`). Each comparison is :func:`kaudit.compare.diff` with ``policy`` and
    the tolerances (keyword options on top of it, as ``diff``). ``gate``: whether the policy
    decides the verdict (default: when a policy or a tolerance is given). ``on_checkpoint(i,
    file)`` is called as each checkpoint is opened."""
    from .readers import opened
    from .stats import summarize

    files = run_members(list(sources) if not isinstance(sources, (str, os.PathLike)) else [os.fspath(sources)], order)
    if gate is None:
        gate = (policy is not None and policy != Policy()) or atol is not None or rtol is not None or bool(tol)
    options: dict[str, Any] = {
        "atol": atol,
        "rtol": rtol,
        "tol": tuple(tol),
        "ignore": tuple(ignore),
        "optimizer": optimizer,
        "policy": policy,
        "block_elems": block_elems,
        "progress": progress,
    }
    steps: list[DiffResult | None] = [None]
    from_first: list[DiffResult | None] = [None]
    norms: list[dict] = []

    def norms_of(ckpt) -> dict:
        return {v.path: summarize(ckpt, v, block_elems).l2 for v in ckpt.select(optimizer)}

    with contextlib.ExitStack() as first_stack:
        if on_checkpoint is not None:
            on_checkpoint(0, files[0])
        first = first_stack.enter_context(opened(files[0]))
        norms.append(norms_of(first))
        prev_stack = contextlib.ExitStack()
        prev = first
        try:
            for i in range(1, len(files)):
                if on_checkpoint is not None:
                    on_checkpoint(i, files[i])
                cur_stack = contextlib.ExitStack()
                try:
                    cur = cur_stack.enter_context(opened(files[i]))
                    steps.append(diff(prev, cur, **options))
                    from_first.append(steps[-1] if prev is first else diff(first, cur, **options))
                    norms.append(norms_of(cur))
                except BaseException:
                    cur_stack.close()
                    raise
                prev_stack.close()  # the previous checkpoint is done with (never the first)
                prev_stack, prev = cur_stack, cur
        finally:
            prev_stack.close()
    notes = []
    if not gate:
        notes.append(
            "no policy given: the trend measures, it does not gate (give a policy file or "
            "--atol/--rtol/--tol for exit codes 0/1)"
        )
    return TrendResult(
        files=tuple(files),
        labels=tuple(labels_of(files)),
        steps=tuple(steps),
        from_first=tuple(from_first),
        norms=tuple(norms),
        gated=gate,
        notes=tuple(notes),
    )
