"""The diff engine: align two checkpoints, stream statistics per pair, apply the policy.

``diff()`` returns an immutable :class:`~kaudit.result.DiffResult`; it prints nothing.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from . import adapters, kernels, quantdiff
from ._gc import collector_paused
from .align import Pair, align
from .checkpoint import DEFAULT_BLOCK_ELEMS, Checkpoint
from .keras.config import shared_configs
from .policy import Policy, Rule, parse_rename, resolve
from .result import DIFF_COLUMNS, RULES, STATUSES, DiffResult, DiffRow
from .snapshot_compare import compare_without_values
from .stats import PairStats, compare_pair

Progress = Callable[[int, int, str], None]


def diff(
    a,
    b,
    *,
    atol: float | None = None,
    rtol: float | None = None,
    tol: tuple[str, ...] | list[str] = (),
    equal_nan: bool | None = None,
    rename: tuple[tuple[str, str], ...] | list = (),
    ignore: tuple[str, ...] | list[str] = (),
    structural: bool = True,
    optimizer: bool = False,
    allow_added: bool = False,
    allow_removed: bool = False,
    allow_trainable_change: bool = False,
    policy=None,
    block_elems: int = DEFAULT_BLOCK_ELEMS,
    workers: int | None = None,
    progress: Progress | None = None,
    pictures: int | None = 0,
    dequantize: bool = False,
    adapters_only: bool = False,
    max_adapter_change: float | None = None,
) -> DiffResult:
    """Compare checkpoints ``a`` and ``b`` (paths or :class:`Checkpoint`).

    Tolerances follow ``numpy.isclose``: an element is within tolerance when
    ``|a - b| <= atol + rtol * |b|``. Defaults are 0 and 0: any change counts. ``tol`` holds
    per-pattern overrides ``'PATTERN=ATOL[,RTOL]'`` (last match wins).

    ``policy`` is the policy applied, as on the command line (:func:`kaudit.policy.resolve`):
    ``None`` (the default) discovers ``kaudit.toml`` / ``[tool.kaudit]`` from the working directory
    up to the repository root, like ``kaudit diff``; ``False`` applies none (``--no-config``); a
    :class:`~kaudit.policy.Policy`, a mapping shaped like ``[tool.kaudit]`` or a path to a TOML
    file applies that one (``--config FILE``). Keyword options are applied on top of it. The
    result names it (``result.policy["description"]``).

    ``pictures``: draw A | B | B - A montages of the first N changed conv kernels while both files
    are open (None: all of them), for reports to show (``DiffResult.pictures``); 0 draws none.
    A quantized weight against a float one is compared dequantized (``kaudit.quantdiff``); two
    quantized ones as stored, or dequantized with ``dequantize=True``.

    LoRA (weights saved with their adapter merged, as Keras saves a layer after ``enable_lora``):
    ``adapters_only=True`` fails any change to a weight without an adapter; ``max_adapter_change``
    bounds each adapted weight's relative change ‖b - a‖ / ‖a‖ (docs/policy.md).
    """
    rename = tuple(_rename_pair(r) for r in rename)
    pol = resolve(policy).with_options(
        atol=atol,
        rtol=rtol,
        tol=tuple(tol),
        ignore=tuple(ignore),
        allow_added=allow_added,
        allow_removed=allow_removed,
        allow_trainable_change=allow_trainable_change,
        equal_nan=equal_nan,
        rename=rename,
        adapters_only=adapters_only,
        max_adapter_change=max_adapter_change,
    )
    from .readers import opened

    with collector_paused(), shared_configs(), opened(a) as ca, opened(b) as cb:  # a, then b
        ca, cb, applied = _with_adapters(ca, cb)
        result = _diff(ca, cb, pol, structural, optimizer, block_elems, workers, progress, dequantize)
        if applied:
            result = replace(result, notes=tuple(applied) + result.notes)
        if pictures != 0:
            from .montages import diff_pictures

            pics, total = diff_pictures(result, ca, cb, pictures)
            result = replace(result, pictures=pics, pictures_total=total)
        return result


def _with_adapters(ca: Checkpoint, cb: Checkpoint) -> tuple[Checkpoint, Checkpoint, list[str]]:
    """A KerasHub adapter file against another checkpoint is that checkpoint with the adapters
    applied (``kaudit diff base x.lora.h5``: the effective change of each adapted kernel)."""
    lora_a, lora_b = ca.format == adapters.HUB_LORA, cb.format == adapters.HUB_LORA
    if lora_b and not lora_a:
        cb, notes = adapters.apply_lora(ca, cb, side="b")
        return ca, cb, notes
    if lora_a and not lora_b:
        ca, notes = adapters.apply_lora(cb, ca, side="a")
        return ca, cb, notes
    return ca, cb, []


def _rename_pair(r) -> tuple[str, str]:
    if isinstance(r, str):
        return parse_rename(r)
    old, new = r
    return str(old), str(new)


def _diff(
    ca: Checkpoint,
    cb: Checkpoint,
    pol: Policy,
    structural: bool,
    optimizer: bool,
    block_elems: int,
    workers: int | None,
    progress: Progress | None,
    dequantize: bool = False,
) -> DiffResult:
    sa, sb = ca.select(optimizer), cb.select(optimizer)
    ignored_paths: set[str] = set()
    if pol.rules:
        skip_a = {v.path for v in sa if pol.ignored(v.path)}
        skip_b = {v.path for v in sb if pol.ignored(v.path)}
        va = [v for v in sa if v.path not in skip_a]
        vb = [v for v in sb if v.path not in skip_b]
        ignored_paths = skip_a | skip_b  # a path ignored in a and in b counts once
    else:  # nothing can be ignored
        va, vb = list(sa), list(sb)
    va, vb, qplan = quantdiff.prepare(va, vb, dequantize)
    pairs, notes = align(va, vb, rename=pol.rename, structural=structural, ckpt_a=ca, ckpt_b=cb)
    notes = list(notes) + qplan.notes
    if not ca.has_config or not cb.has_config:
        side = " and ".join(n for n, c in (("a", ca), ("b", cb)) if not c.has_config)
        notes.append(
            f"trainability of {side} is unknown (no model config in the file): trainable changes "
            "cannot be checked there"
        )

    total_bytes = sum(p.a.params * 4 for p in pairs if p.a is not None and p.b is not None)
    # the compiled kernels for the large changed pairs of a large model only: loading them costs
    # ~0.35 s and ~120 MiB once (kaudit/kernels.py); decided from the tables alone, so the same
    # files always take the same path
    compiled = kernels.worth_loading(total_bytes // 4)
    done = [0]
    import threading

    lock = threading.Lock()

    def work(p: Pair) -> dict:
        row = _row(ca, cb, p, pol, block_elems, qplan, compiled)
        if progress is not None and p.a is not None and p.b is not None:
            with lock:  # one progress line at a time, no lost counts
                done[0] += p.a.params * 4
                progress(done[0], total_bytes, p.path)
        return row

    n_workers = workers if workers is not None else (2 if total_bytes > (64 << 20) and (os.cpu_count() or 1) > 1 else 1)
    if n_workers > 1:
        # largest pairs first (longest-processing-time order) so the workers finish together;
        # rows keep the pair order
        order = sorted(
            range(len(pairs)),
            key=lambda i: -(_params(pairs[i].a) if pairs[i].b is not None else 0),
        )
        with ThreadPoolExecutor(n_workers) as ex:
            futures = {i: ex.submit(work, pairs[i]) for i in order}
            rows = [futures[i].result() for i in range(len(pairs))]
    else:
        rows = [work(p) for p in pairs]

    failures: list[str] = []
    for row in rows:
        kinds = {kind for kind, _msg in row["failures"]}
        messages = [msg for _kind, msg in row["failures"]]
        failures.extend(messages)
        row["passed"] = not messages
        row["rule"] = ",".join(k for k in RULES if k in kinds) or None
        row["failures"] = "; ".join(messages)
    failures += adapters.asset_failures(ca, cb)  # KerasHub presets: tokenizer, config... by hash

    make = DiffRow._make
    records = tuple(make(map(row.__getitem__, DIFF_COLUMNS)) for row in rows)
    return DiffResult(
        file_a=ca.file,
        file_b=cb.file,
        format_a=ca.format,
        format_b=cb.format,
        records=records,
        passed=not failures,
        summary=summarize_rows(records, len(ignored_paths)),
        failures=tuple(failures),
        notes=tuple(notes),
        policy=pol.as_dict(),
    )


def summarize_rows(records, ignored: int) -> dict:
    """The summary figures of a diff, each exactly what its name says (docs/metrics.md): counts
    of rows by status and by how they were paired, the elements over tolerance summed over the
    rows that know theirs, and ``ignored``: distinct variable paths left out by ignore rules."""
    statuses = Counter(r.status for r in records)
    matched = Counter(r.matched_by for r in records)
    summary = {s: statuses.get(s, 0) for s in STATUSES}
    summary.update(
        pairs=len(records),
        failed=sum(not r.passed for r in records),
        trainable_changed=sum(r.trainable_changed is True for r in records),
        elements_over_tolerance=sum(int(r.n_exceed) for r in records if r.n_exceed is not None),
        unverified=sum(r.n_exceed is None and r.status in ("changed", "dtype_changed") for r in records),
        structural=matched.get("structure", 0),
        renamed=matched.get("rule", 0),
        by_values=matched.get("values", 0),
        ignored=ignored,
    )
    return summary


def _fmt(x: float) -> str:
    """A figure in a failure line: integers exactly, floats to 4 significant digits."""
    return str(x) if isinstance(x, int) else f"{x:.4g}"


_EMPTY_ROW = dict.fromkeys(DIFF_COLUMNS)


def _row(
    ca: Checkpoint,
    cb: Checkpoint,
    p: Pair,
    pol: Policy,
    block_elems: int,
    qplan: quantdiff.Plan | None = None,
    compiled: bool = False,
) -> dict:
    a, b = p.a, p.b
    path = a.path if a is not None else b.path  # type: ignore[union-attr]
    if pol.rules:
        atol, rtol, tol_rule = pol.tolerance_for(path)
        rules = pol.matching(path)
    else:  # no rule can match: the policy's own tolerances
        atol, rtol, tol_rule, rules = pol.atol, pol.rtol, None, []
    row = _EMPTY_ROW.copy()
    if a is not None:
        row["path"] = a.path
        row["shape_a"] = list(a.shape)
        row["dtype_a"] = a.dtype
        row["trainable_a"] = a.trainable
    if b is not None:
        row["path_b"] = b.path
        row["shape_b"] = list(b.shape)
        row["dtype_b"] = b.dtype
        row["trainable_b"] = b.trainable
    row["matched_by"] = p.matched_by
    row["kind"] = (a or b).kind  # type: ignore[union-attr]
    row["layer_class"] = a.layer_class if a and a.layer_class else (b.layer_class if b else None)
    row["params"] = (b or a).params  # type: ignore[union-attr]
    row["atol"] = atol
    row["rtol"] = rtol
    lora = (a.lora if a is not None else None) or (b.lora if b is not None else None)
    if lora is not None:
        row["lora"] = lora.describe() + (" (b - a is its ΔW)" if lora.role == "merged" else "")
    failures: list[tuple[str, str]] = []  # (rule of RULES, message)
    known = None
    if a is None:
        row["status"] = "only_in_b"
        row["path"] = b.path  # type: ignore[union-attr]
        if not pol.allow_added:
            failures.append(("structure", f"structure: {b.path} only in b (added; --allow-added to accept)"))  # type: ignore[union-attr]
    elif b is None:
        row["status"] = "only_in_a"
        if not pol.allow_removed:
            failures.append(("structure", f"structure: {a.path} only in a (removed; --allow-removed to accept)"))
    elif qplan is not None and qplan.applies(a, b):
        _quant_row(row, ca, a, cb, b, qplan, path, atol, rtol, pol.equal_nan, block_elems, failures)
        if not any(r.must_change is not None for r in rules) or (tol_rule is not None and tol_rule.frozen):
            failures += _value_failures(row, path, tol_rule, atol, rtol, None)
    elif a.shape != b.shape:
        row["status"] = "shape_changed"
        failures.append(("structure", f"structure: {path} shape {list(a.shape)} -> {list(b.shape)}"))
    elif lora is not None and (pol.adapters_only or pol.max_adapter_change is not None):
        # an adapted weight: its change is the adapter's (ΔW = b - a), held to the LoRA rules only
        # (and to a frozen rule that names it)
        st = _stats(ca, a, cb, b, atol, rtol, pol.equal_nan, block_elems, compiled)
        _fill_stats(row, st, a.shape)
        known = st.extra if st.extra.get("no_values") else None
        if a.dtype != b.dtype:
            row["status"] = "dtype_changed"
            failures.append(("structure", f"structure: {path} dtype {a.dtype} -> {b.dtype}"))
        else:
            row["status"] = (
                "identical" if st.identical else ("close" if st.n_exceed == 0 and known is None else "changed")
            )
        if tol_rule is not None and tol_rule.frozen:
            failures += _value_failures(row, path, tol_rule, atol, rtol, known)
        failures += _adapter_failures(row, path, pol, known)
    else:
        st = _stats(ca, a, cb, b, atol, rtol, pol.equal_nan, block_elems, compiled)
        _fill_stats(row, st, a.shape)
        known = st.extra if st.extra.get("no_values") else None  # against a snapshot without values
        if a.dtype != b.dtype:
            row["status"] = "dtype_changed"
            values = (
                "values not compared against a snapshot without values"
                if known is not None
                else f"values max_abs {_fmt(st.max_abs)}"
            )
            failures.append(("structure", f"structure: {path} dtype {a.dtype} -> {b.dtype} ({values})"))
        elif st.identical:
            row["status"] = "identical"
        elif st.n_exceed == 0 and known is None:
            row["status"] = "close"
        else:  # over tolerance; or differing from a snapshot, where closeness cannot be proven
            row["status"] = "changed"
        if not any(r.must_change is not None for r in rules) or (tol_rule is not None and tol_rule.frozen):
            failures += _value_failures(row, path, tol_rule, atol, rtol, known)
    if a is not None and b is not None:
        moved = _loaded_elsewhere(ca, a, cb, b)
        if moved:
            failures.append(("structure", f"structure: {path} {moved}"))
        if a.trainable is not None and b.trainable is not None:
            row["trainable_changed"] = a.trainable != b.trainable
        else:
            row["trainable_changed"] = False
        if (
            row["trainable_changed"]
            and qplan is not None
            and qplan.applies(a, b)
            and (
                (a.path in qplan.dequant[0] and a.trainable is False)
                or (b.path in qplan.dequant[1] and b.trainable is False)
            )
        ):
            row["quant"] = (
                row["quant"] or ""
            ) + " (quantized weights are not trainable, by design)"  # not a trainability change
        elif (
            row["trainable_changed"]
            and lora is not None
            and lora.role == "merged"
            and (a.lora is None) != (b.lora is None)
            and (a.trainable if a.lora is not None else b.trainable) is False
        ):
            row["lora"] = (
                row["lora"] or ""
            ) + " (enable_lora freezes the weight it adapts, by design)"  # not a trainability change
        elif row["trainable_changed"] and not pol.allow_trainable_change:
            failures.append(
                (
                    "trainability",
                    f"trainability: {path} trainable {a.trainable} -> {b.trainable} "
                    "(--allow-trainable-change to accept)",
                )
            )
        if rules:
            failures += _rule_failures(rules, row, path, known)
        if pol.adapters_only and lora is None and row["status"] not in ("identical", "shape_changed"):
            failures.append(
                (
                    "adapters_only",
                    f"adapters_only: {path} carries no LoRA adapter and changed"
                    + ("" if known is not None or row["max_abs"] is None else f" (max_abs {_fmt(row['max_abs'])})"),
                )
            )
    row["failures"] = failures
    return row


def _adapter_failures(row: dict, path: str, pol: Policy, known: dict | None) -> list[tuple[str, str]]:
    """``max_adapter_change``: the relative size of an adapted weight's change, ‖b - a‖ / ‖a‖."""
    bound = pol.max_adapter_change
    if bound is None or row["status"] == "identical":
        return []
    if known is not None:
        return [
            (
                "max_adapter_change",
                f"max_adapter_change: {path} changed, by how much cannot be proven against a snapshot without values",
            )
        ]
    rel = row["rel_l2"]
    if rel is None or not rel <= bound:
        return [
            (
                "max_adapter_change",
                f"max_adapter_change: {path} changed by ‖ΔW‖/‖W‖ = {_fmt(rel) if rel is not None else 'n/a'} "
                f"> {bound:g} (its LoRA adapter, merged)",
            )
        ]
    return []


#: Formats that Keras loads by group path into a model built in code (no config in the file):
#: ``model.load_weights`` puts group ``layers/dense`` into the first Dense, whatever its ``name``.
_LOADED_BY_GROUP = frozenset({"keras3-weights", "keras3-sharded"})


def _loaded_elsewhere(ca: Checkpoint, a, cb: Checkpoint, b) -> str | None:
    """Why a pair of two weights-only Keras 3 files is not the same variable to Keras: the files
    name it alike but store it under different group paths, so loading b where a is loaded puts
    its values into another layer (docs/formats.md, "How values are assigned"). Else None."""
    if ca.format not in _LOADED_BY_GROUP or cb.format not in _LOADED_BY_GROUP:
        return None
    la, lb = a.location.rpartition(":")[2], b.location.rpartition(":")[2]  # (a shard's name before ':')
    if la == lb:
        return None
    return (
        f"is stored at {la} in a but at {lb} in b: Keras loads a weights file by group path, so "
        "loading b where a is loaded puts these values into another layer"
    )


def _quant_row(row, ca, a, cb, b, qplan, path, atol, rtol, equal_nan, block_elems, failures) -> None:
    """A weight compared dequantized (``kaudit.quantdiff``): the float shapes must agree; the
    statistics are those of the float values; SQNR in dB."""
    row["quant"] = quantdiff.describe(qplan, a, b)
    if not quantdiff.same_shape(qplan, a, b):
        row["status"] = "shape_changed"
        failures.append(
            (
                "structure",
                f"structure: {path} float shape {list(quantdiff.float_shape(a, qplan, 0))} -> "
                f"{list(quantdiff.float_shape(b, qplan, 1))} (dequantized)",
            )
        )
        return
    st, sqnr = quantdiff.compare(
        ca, a, cb, b, qplan, atol=atol, rtol=rtol, equal_nan=equal_nan, block_elems=block_elems
    )
    _fill_stats(row, st, quantdiff.float_shape(a, qplan, 0))
    row["sqnr_db"] = sqnr
    row["status"] = "identical" if st.identical else "close" if st.n_exceed == 0 else "changed"


def _stats(ca, a, cb, b, atol, rtol, equal_nan, block_elems, compiled: bool = False) -> PairStats:
    if not getattr(ca.store, "has_values", True) or not getattr(cb.store, "has_values", True):
        return compare_without_values(ca, a, cb, b, atol=atol, rtol=rtol, equal_nan=equal_nan)
    return compare_pair(
        ca, a, cb, b, atol=atol, rtol=rtol, equal_nan=equal_nan, block_elems=block_elems, compiled=compiled
    )


#: What :func:`_fill_stats` writes for a bit-identical pair (whatever its size): its statistics
#: are those of a PairStats with nothing accumulated.
#: NaN and Inf counts are not taken (the bytes were compared, not the values): left empty.
_IDENTICAL = {
    "max_abs": 0.0,
    "mean_abs": 0.0,
    "rms": 0.0,
    "max_rel": 0.0,
    "rel_l2": 0.0,
    "rel_change": 0.0,
    "cosine": 1.0,
    "n_exceed": 0,
    "frac_exceed": 0.0,
    "nan_a": None,
    "nan_b": None,
    "inf_a": None,
    "inf_b": None,
    "argmax": None,
}


def _fill_stats(row: dict, st: PairStats, shape: tuple[int, ...]) -> None:
    if st.identical and st.argmax is None and not st.extra:
        row.update(_IDENTICAL)
        return
    if st.extra.get("no_values"):
        row.update(st.extra.get("row", {}))
        row["rel_change"] = 0.0 if st.identical else None  # a snapshot has no values to subtract
        return
    row.update(
        max_abs=st.max_abs,
        mean_abs=st.mean_abs,
        rms=st.rms,
        max_rel=st.max_rel,
        rel_l2=st.rel_l2,
        rel_change=rel_change(st),
        cosine=st.cosine,
        n_exceed=st.n_exceed,
        frac_exceed=st.frac_exceed,
        nan_a=st.nan_a,
        nan_b=st.nan_b,
        inf_a=st.inf_a,
        inf_b=st.inf_b,
        argmax=_unravel(st.argmax, shape) if st.argmax is not None else None,
    )


def rel_change(st: PairStats) -> float:
    """The relative change of a pair: ||b - a|| / max(||a||, ||b||) (docs/metrics.md).

    Symmetric in a and b, scale-free, finite and within [0, 2] for finite values (the triangle
    inequality): 0 for equal values, about ``rel_l2`` for small changes, 1 for a tensor that
    starts (or ends) at zero, 2 for a sign flip. ``inf`` only where a NaN or Inf meets a
    different value (``max_abs`` is then inf too)."""
    if st.sum_sq == 0.0:
        return 0.0
    if not math.isfinite(st.sum_sq):
        return math.inf
    scale = math.sqrt(max(st.norm_a2, st.norm_b2))
    # scale > 0 here: a non-zero finite difference needs a non-zero side
    return min(2.0, math.sqrt(st.sum_sq) / scale) if scale > 0 else math.inf


def _unravel(flat: int, shape: tuple[int, ...]) -> list[int]:
    if not shape:
        return []
    import numpy as np

    return [int(i) for i in np.unravel_index(flat, shape)]


def _value_failures(
    row: dict, path: str, tol_rule: Rule | None, atol: float, rtol: float, known: dict | None
) -> list[tuple[str, str]]:
    """The failure of a pair's values against its tolerance (or ``frozen``), saying what is known:
    the figures, or, against a snapshot without values, what its hashes and statistics prove."""
    status = row["status"]
    frozen = tol_rule is not None and tol_rule.frozen
    if status == "identical" or (not frozen and status != "changed"):
        return []
    rule = "frozen" if frozen else "tolerance"
    who = tol_rule.label if tol_rule is not None else f"tolerance atol={atol:g} rtol={rtol:g}"
    if known is not None and row["n_exceed"] is None:
        lb = known["max_abs_at_least"]
        if frozen:
            return [
                (
                    rule,
                    f"{who}: {path} changed (its sha256 differs from the snapshot's"
                    + (f"; max_abs >= {_fmt(lb)}" if lb else "")
                    + ")",
                )
            ]
        if known["over"]:
            return [
                (
                    rule,
                    f"{who}: {path} changed, max_abs >= {_fmt(lb)} (from the snapshot's statistics), over "
                    "tolerance; element counts need a snapshot with --values",
                )
            ]
        bound = f" (max_abs >= {_fmt(lb)})" if lb else ""
        return [
            (
                rule,
                f"{who}: {path} differs from the snapshot (sha256); closeness unverifiable against a "
                f"snapshot without values{bound}; compare against the file or a snapshot with --values",
            )
        ]
    if frozen:
        return [
            (
                rule,
                f"{who}: {path} changed, max_abs {_fmt(row['max_abs'])}"
                + (f", {row['n_exceed']} element(s)" if row["n_exceed"] else ""),
            )
        ]
    return [
        (
            rule,
            f"{who}: {path} changed, max_abs {_fmt(row['max_abs'])}, {row['n_exceed']} of {row['params']} "
            f"element(s) over tolerance",
        )
    ]


def _rule_failures(rules: list[Rule], row: dict, path: str, known: dict | None) -> list[tuple[str, str]]:
    out = []
    for r in rules:
        if r.must_change is not None and row["status"] in ("identical", "close", "changed", "dtype_changed"):
            m = row["max_abs"]
            more = f" by more than {r.must_change:g}" if r.must_change else ""
            if row["status"] == "identical":
                out.append(("must_change", f"{r.label}: {path} did not change (max_abs 0)"))
            elif m is None:  # against a snapshot without values: only a bound is known
                lb = known["max_abs_at_least"] if known is not None else 0.0
                if not lb > r.must_change:
                    out.append(
                        (
                            "must_change",
                            f"{r.label}: {path} changed{more} cannot be proven against a "
                            f"snapshot without values (max_abs >= {_fmt(lb)} from its statistics)",
                        )
                    )
            elif m <= r.must_change:
                out.append(("must_change", f"{r.label}: {path} did not change{more} (max_abs {_fmt(m)})"))
        if r.trainable is not None:
            tb = row["trainable_b"]
            if tb is None:
                out.append(("trainable", f"{r.label}: {path} trainability in b is unknown (no model config)"))
            elif tb != r.trainable:
                out.append(("trainable", f"{r.label}: {path} is trainable={str(tb).lower()} in b"))
    return out


def _params(v) -> int:
    return v.params if v is not None else 0
