"""Verdicts you can trust (issue 13): each test is a class of bug, checked on every path.

* snapshots prove identity (sha256) and difference, never closeness; ``--values`` snapshots compare
  like files;
* integers compare exactly, in integer arithmetic;
* one NaN rule on every path (the byte-identity shortcut included), no numpy warnings;
* names from a file are escaped in every human-readable output;
* one verdict: the printed word, JSON ``passed`` and the exit code agree, for every command and format;
* the policy applied is named in every report, and the CLI and the API apply the same one;
* every summary figure is what its words say, recomputed here from the rows.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import re
import shutil
import warnings
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

import kaudit
from kaudit import paths
from kaudit.checkpoint import Checkpoint, Variable
from kaudit.errors import CorruptFileError
from kaudit.health import audit
from kaudit.inspection import inspect
from kaudit.testing import assert_checkpoints_match

from .conftest import AFTER, BEFORE, CONVNET, fixture

TUT_FULL = fixture("tutorial/k2_full.h5")
TUT_WEIGHTS = fixture("tutorial/k2_weights.h5")


def copy_edit(src: str, dst: Path, edit) -> str:
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)
    return str(dst)


def dataset(f: h5py.File, suffix: str) -> h5py.Dataset:
    found = []
    f.visititems(lambda n, o: found.append(o) if isinstance(o, h5py.Dataset) and n.endswith(suffix) else None)
    assert len(found) == 1, (suffix, found)
    return found[0]


def conv1(f: h5py.File) -> h5py.Dataset:
    return f["model_weights/conv1/conv1/kernel:0"]


def swapped(tmp_path) -> str:
    """convnet with two different elements of conv1's kernel swapped: min/max/mean/std/L2 unchanged."""

    def edit(f):
        x = conv1(f)[...]
        flat = x.reshape(-1)
        j = int(np.flatnonzero(flat != flat[0])[0])
        flat[0], flat[j] = flat[j], flat[0]
        conv1(f)[...] = x

    return copy_edit(CONVNET, tmp_path / "swapped.h5", edit)


def bgr(tmp_path) -> str:
    """convnet with conv1's input channels reversed (RGB -> BGR)."""

    def edit(f):
        conv1(f)[...] = conv1(f)[...][:, :, ::-1, :]

    return copy_edit(CONVNET, tmp_path / "bgr.h5", edit)


def snap(cli, src: str, out: Path, *extra: str) -> str:
    code, _, err = cli("snapshot", src, "-o", str(out), *extra)
    assert code == 0, err
    return str(out)


# == 1. snapshots: identity and difference are proven, closeness needs the values ==================


def test_snapshot_without_values_never_calls_a_permutation_close(tmp_path, cli):
    s = snap(cli, CONVNET, tmp_path / "s.json")
    for b, opts in ((swapped(tmp_path), ()), (bgr(tmp_path), ("--atol", "1e-3")), (bgr(tmp_path), ("--atol", "10"))):
        code, out, _ = cli("diff", s, b, *opts)
        assert code == 1, (b, opts, out)
        res = kaudit.diff(s, b, atol=float(opts[1]) if opts else None, policy=False)
        assert not res.passed
        row = next(r for r in res.records if r.path == "conv1/kernel")
        assert row.status == "changed" and not row.passed and row.max_abs is None and row.n_exceed is None
        line = next(f for f in res.failures if "conv1/kernel" in f)
        assert "closeness unverifiable against a snapshot" in line, line
        assert "None" not in line and "n/a" not in line, line
        assert "closeness unverifiable against a snapshot" in out
    # identical bytes are proven identical by the hash
    code, out, _ = cli("diff", s, CONVNET)
    assert code == 0 and "PASS" in out


def test_snapshot_proves_a_change_from_min_and_max(tmp_path):
    """What the statistics do prove: max |a - b| >= |max a - max b| (and the same for min)."""

    def edit(f):
        x = conv1(f)[...]
        x.reshape(-1)[int(np.argmax(x))] += 0.5  # the maximum moves by 0.5
        conv1(f)[...] = x

    b = copy_edit(CONVNET, tmp_path / "moved.h5", edit)
    s = tmp_path / "s.json"
    s.write_text(json.dumps(kaudit.snapshot(CONVNET)))
    res = kaudit.diff(str(s), b, atol=0.1, policy=False)
    line = next(f for f in res.failures if "conv1/kernel" in f)
    assert "max_abs >= 0.5" in line and "over tolerance" in line and "unverifiable" not in line, line
    # must_change is proven only by a difference the statistics show
    must = {"rules": [{"path": "conv1/kernel", "must_change": 0.4}]}
    assert kaudit.diff(str(s), b, policy=must, atol=1).passed
    must_more = {"rules": [{"path": "conv1/kernel", "must_change": 0.6}]}
    res = kaudit.diff(str(s), b, policy=must_more, atol=1)
    assert not res.passed and any("cannot be proven" in f for f in res.failures), res.failures
    # a swap changes no statistic: a change is not proven either
    res = kaudit.diff(
        str(s), swapped(tmp_path), policy={"rules": [{"path": "conv1/kernel", "must_change": True}]}, atol=1
    )
    assert not res.passed and any("cannot be proven" in f for f in res.failures), res.failures


def test_snapshot_with_values_compares_like_the_file(tmp_path, cli):
    s = snap(cli, CONVNET, tmp_path / "sv.json", "--values")
    doc = json.loads(Path(s).read_text())
    assert doc["values"] == "zlib-base64" and all("data" in v for v in doc["variables"])
    cases = [(swapped(tmp_path), {}), (bgr(tmp_path), {"atol": 1e-3}), (bgr(tmp_path), {"atol": 10.0}), (CONVNET, {})]
    for b, kw in cases:
        via_snap = kaudit.diff(s, b, policy=False, **kw)
        via_file = kaudit.diff(CONVNET, b, policy=False, **kw)
        assert via_snap.passed == via_file.passed, (b, kw)
        for r1, r2 in zip(via_snap.records, via_file.records, strict=True):
            for k in ("path", "status", "max_abs", "n_exceed", "argmax", "passed"):
                assert getattr(r1, k) == getattr(r2, k), (b, kw, k)
        code = cli("diff", s, b, *(["--atol", str(kw["atol"])] if kw else []))[0]
        assert code == via_file.exit_code
    # a values snapshot is a full checkpoint: inspect shows the same statistics, montage draws it
    code, out, _ = cli("inspect", s, "--format", "json")
    stats_snap = {v["path"]: (v["min"], v["max"]) for v in json.loads(out)["variables"]}
    code, out, _ = cli("inspect", CONVNET, "--format", "json")
    assert stats_snap == {v["path"]: (v["min"], v["max"]) for v in json.loads(out)["variables"]}
    assert cli("montage", s, "-o", str(tmp_path / "m.png"))[0] == 0


def _tamper(src: str, dst: Path, edit) -> str:
    doc = json.loads(Path(src).read_text())
    row = next(v for v in doc["variables"] if v["path"] == "conv1/kernel")
    edit(row)
    dst.write_text(json.dumps(doc))
    return str(dst)


def test_snapshot_values_are_checked_and_bounded(tmp_path, cli):
    s = snap(cli, CONVNET, tmp_path / "sv.json", "--values")
    raw = None

    def decoded(row):
        return zlib.decompress(base64.b64decode(row["data"]))

    def flip(row):
        data = bytearray(decoded(row))
        data[5] ^= 1
        row["data"] = base64.b64encode(zlib.compress(bytes(data))).decode()

    def short(row):
        row["data"] = base64.b64encode(zlib.compress(decoded(row)[:-4])).decode()

    def bomb(row):  # 1 GiB of zeros in 1 MB
        nonlocal raw
        c = zlib.compressobj(9)
        chunk = bytes(1 << 20)
        body = b"".join(c.compress(chunk) for _ in range(1024)) + c.flush()
        raw = len(body)
        row["data"] = base64.b64encode(body).decode()

    def not_b64(row):
        row["data"] = "$$$"

    def missing(row):
        del row["data"]

    for name, edit, words in (
        ("flip", flip, "do not match their sha256"),
        ("short", short, "bytes"),
        ("bomb", bomb, "bytes"),
        ("b64", not_b64, "base64"),
        ("missing", missing, "data"),
    ):
        bad = _tamper(s, tmp_path / f"{name}.json", edit)
        code, out, err = cli("diff", bad, CONVNET)
        assert code == 2 and out == "", (name, out)
        assert words in err and "\n" not in err.strip(), (name, err)
        with pytest.raises(CorruptFileError), kaudit.load(bad) as ck:
            ck.read("conv1/kernel")
    assert raw is not None and raw < (2 << 20)


def test_snapshot_values_size_is_capped_when_written(tmp_path, cli, monkeypatch):
    from kaudit import baseline

    monkeypatch.setattr(baseline, "MAX_BYTES", 4096)
    code, _, err = cli("snapshot", CONVNET, "-o", str(tmp_path / "big.json"), "--values")
    assert code == 2 and not (tmp_path / "big.json").exists() and "--values" in err


def test_snapshot_frozen_and_dtype_failures_say_what_is_known(tmp_path):
    s = tmp_path / "s.json"
    s.write_text(json.dumps(kaudit.snapshot(CONVNET)))
    res = kaudit.diff(str(s), swapped(tmp_path), policy={"rules": [{"path": "conv1/**", "frozen": True}]})
    line = next(f for f in res.failures if "conv1/kernel" in f)
    assert line.startswith("conv1/** frozen: conv1/kernel") and "sha256" in line and "n/a" not in line, line


# == 2. integers compare exactly ===================================================================


class MemStore:
    def __init__(self, arrays):
        self.arrays = arrays

    def read(self, var, selection=()):
        return np.array(self.arrays[var.location])

    def iter_blocks(self, var, block_elems):
        flat = self.arrays[var.location].reshape(-1)
        for s in range(0, flat.size, block_elems):
            yield flat[s : s + block_elems]

    def close(self):
        pass


def mem(arrays: dict[str, np.ndarray], name: str = "mem") -> Checkpoint:
    variables = tuple(
        Variable(
            path=p,
            layer=paths.layer_of(p),
            layer_class=None,
            name=paths.short_name(p),
            shape=tuple(x.shape),
            dtype=x.dtype.name,
            trainable=None,
            location=p,
        )
        for p, x in arrays.items()
    )
    return Checkpoint(file=name, format="test", all_variables=variables, store=MemStore(arrays))


I64 = np.int64
U64 = np.uint64
INT_CASES = [  # a, b, exact max |a - b|
    (np.array([2**53], I64), np.array([2**53 + 1], I64), 1),
    (np.array([2**62 + 1, 5], I64), np.array([2**62, 5], I64), 1),
    (np.array([np.iinfo(I64).min], I64), np.array([np.iinfo(I64).max], I64), 2**64 - 1),
    (np.array([0, 7], U64), np.array([2**64 - 1, 7], U64), 2**64 - 1),
    (np.array([2**63 + 3], U64), np.array([2**63 + 1], U64), 2),
    (np.array([True, False]), np.array([True, True]), 1),
    (np.array([-128, 127], np.int8), np.array([127, 127], np.int8), 255),
]


@pytest.mark.parametrize("a,b,expect", INT_CASES)
@pytest.mark.parametrize("block_elems", [1, 1 << 20])
def test_integers_compare_exactly(a, b, expect, block_elems):
    res = kaudit.diff(mem({"l/w": a}), mem({"l/w": b}), policy=False, block_elems=block_elems)
    r = res.records[0]
    assert r.status == "changed" and not res.passed
    assert isinstance(r.max_abs, int) and r.max_abs == expect
    assert r.n_exceed == int(np.count_nonzero(a != b))
    assert f"max_abs {expect}," in res.failures[0], res.failures[0]


def test_integer_tolerance_is_exact():
    """|a - b| = 2 is over atol=1 although float64 rounds both values to a difference of 1."""
    a, b = np.array([2**53 + 1], I64), np.array([2**53 - 1], I64)
    assert float(a[0]) - float(b[0]) == 1.0  # what the float path saw
    res = kaudit.diff(mem({"l/w": a}), mem({"l/w": b}), atol=1, policy=False)
    assert res.records[0].max_abs == 2 and res.records[0].n_exceed == 1 and not res.passed
    assert kaudit.diff(mem({"l/w": a}), mem({"l/w": b}), atol=2, policy=False).passed


def test_mixed_signed_unsigned_dtype_change_is_exact():
    a, b = np.array([-3, 3], I64), np.array([2**64 - 1, 3], U64)
    r = kaudit.diff(mem({"l/w": a}), mem({"l/w": b}), policy=False).records[0]
    assert r.status == "dtype_changed" and r.max_abs == 2**64 + 2 and r.n_exceed == 1


def test_int64_file_on_the_command_line(tmp_path, cli):
    def at(value):
        def edit(f):
            f["optimizer_weights/iteration:0"][()] = value

        return edit

    names = []
    with h5py.File(TUT_FULL) as f:
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) and o.dtype == np.int64 else None)
    assert names == ["optimizer_weights/iteration:0"], names
    a = copy_edit(TUT_FULL, tmp_path / "a.h5", at(2**53))
    b = copy_edit(TUT_FULL, tmp_path / "b.h5", at(2**53 + 1))
    code, out, _ = cli("diff", a, b, "--optimizer", "--format", "json")
    doc = json.loads(out)
    row = next(v for v in doc["variables"] if v["path"] == "optimizer/iteration")
    assert code == 1 and row["status"] == "changed" and row["max_abs"] == 1 and doc["passed"] is False


# == 3. one NaN rule on every path; no numpy warnings ==============================================


def _nan_file(tmp_path, name, bits):
    def edit(f):
        d = f["model_weights/L2_dense/L2_dense/kernel:0"]
        x = d[...]
        x.view(np.uint32)[0, 0] = bits
        d[...] = x

    return copy_edit(TUT_FULL, tmp_path / name, edit)


QNAN, QNAN_PAYLOAD, SNAN = 0x7FC00000, 0x7FC00001, 0x7FA00000


@pytest.mark.parametrize("block_elems", [4, 1 << 20])
@pytest.mark.parametrize("values_snapshot", [False, True])
def test_nan_unequal_applies_to_identical_bytes(tmp_path, block_elems, values_snapshot, cli):
    a = _nan_file(tmp_path, "a.h5", QNAN)
    same = _nan_file(tmp_path, "same.h5", QNAN)
    other = _nan_file(tmp_path, "other.h5", QNAN_PAYLOAD)
    if values_snapshot:
        a = snap(cli, a, tmp_path / "a.json", "--values")
    for b in (same, other):
        assert kaudit.diff(a, b, policy=False, block_elems=block_elems).passed
        res = kaudit.diff(a, b, policy=False, equal_nan=False, block_elems=block_elems)
        r = next(r for r in res.records if r.path == "L2_dense/kernel")
        assert not res.passed and r.status == "changed" and r.n_exceed == 1 and r.max_abs == math.inf, b
    assert cli("diff", a, same, "--nan-unequal")[0] == 1


def test_nan_unequal_against_a_snapshot_without_values(tmp_path):
    a = _nan_file(tmp_path, "a.h5", QNAN)
    s = tmp_path / "s.json"
    s.write_text(json.dumps(kaudit.snapshot(a)))
    assert kaudit.diff(str(s), a, policy=False).passed
    res = kaudit.diff(str(s), a, policy=False, equal_nan=False)
    r = next(r for r in res.records if r.path == "L2_dense/kernel")
    assert not res.passed and r.status == "changed" and r.n_exceed == 1


def test_signalling_nan_prints_no_warning(tmp_path, cli):
    a = _nan_file(tmp_path, "a.h5", QNAN)
    b = _nan_file(tmp_path, "b.h5", SNAN)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli("diff", a, b)[0] == 0
        assert cli("diff", a, b, "--nan-unequal", "--format", "json")[0] == 1
        assert cli("diff", b, b, "--nan-unequal")[0] == 1
        assert cli("inspect", b)[0] == 0
        assert cli("audit", b)[0] == 1
        assert cli("snapshot", b, "-o", str(tmp_path / "s.json"))[0] == 0
        assert cli("diff", str(tmp_path / "s.json"), a)[0] == 1
        kaudit.diff(a, b, block_elems=3, policy=False)
    assert [str(w.message) for w in caught] == []


# == 4. names from the file are escaped in every human-readable output ==============================

HOSTILE = {
    "L0_conv2d": "ansi\x1b[2Jclear\x1b]0;pwned\x07title\rcr|pipe",
    "L3_dense": "<img src=x onerror=alert(1)><script>alert(2)</script>",
    "L2_dense": "md*_[x](y)`tick`#h\u202eevil",
}


def hostile_file(tmp_path, name: str, bump: bool = False) -> str:
    """tutorial/k2_weights.h5 with layers renamed (group names and ``layer_names``)."""

    def edit(f):
        order = [str(n) for n in f.attrs["layer_names"]]
        for old, new in HOSTILE.items():
            if "/" in new:
                f.require_group(new.rsplit("/", 1)[0])
            f.move(old, new)
        f.attrs["layer_names"] = np.array([HOSTILE.get(n, n).encode() for n in order])
        if bump:
            for new in HOSTILE.values():
                f[new].visititems(
                    lambda n, o: (
                        o.__setitem__(Ellipsis, o[...] + 1) if isinstance(o, h5py.Dataset) and "kernel" in n else None
                    )
                )

    return copy_edit(TUT_WEIGHTS, tmp_path / name, edit)


def _no_control(text: str, where: str) -> None:
    bad = sorted({c for c in text if not c.isprintable() and c not in "\n"})
    assert not bad, (where, bad)


def md_plain(text: str) -> str:
    """Markdown source as it reads once rendered: backslash escapes and entities resolved."""
    return html.unescape(re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text))


def _check_markdown(text: str, where: str) -> None:
    _no_control(text, where)
    assert "<img" not in text and "<script" not in text, where
    table = [ln for ln in text.splitlines() if ln.startswith("|")]
    cells = [len(re.findall(r"(?<!\\)\|", ln)) for ln in table]  # unescaped pipes: cell borders
    assert table and len(set(cells)) == 1, (where, table)


def test_hostile_names_are_escaped_everywhere(tmp_path, cli):
    a = hostile_file(tmp_path, "a.h5")
    b = hostile_file(tmp_path, "b.h5", bump=True)
    with kaudit.load(a) as ck:
        exact = {v.path for v in ck.model_variables}
    assert any("\x1b" in p for p in exact) and any("<script>" in p for p in exact)
    for fmt in ("table", "markdown", "csv", "html", "junit", "json"):
        code, out, err = cli("diff", a, b, "--format", fmt)
        assert code == 1 and err == "", fmt
        if fmt == "json":  # JSON keeps the exact names
            assert {v["path"] for v in json.loads(out)["variables"]} == exact
            continue
        _no_control(out, fmt)
        if fmt == "markdown":
            _check_markdown(out, fmt)
        if fmt == "html":
            assert "<img src=x" not in out and "<script>alert" not in out
        if fmt == "junit":
            suite = ET.fromstring(out.encode())
            assert any("\\x1b[2J" in c.get("name") for c in suite.iter("testcase"))
        assert "\\x1b[2J" in (md_plain(out) if fmt == "markdown" else out), fmt  # shown, visibly
    for fmt in ("table", "markdown", "csv", "html", "json"):
        code, out, _ = cli("inspect", a, "--format", fmt)
        assert code == 0
        if fmt == "json":
            assert {v["path"] for v in json.loads(out)["variables"]} == exact
            continue
        _no_control(out, "inspect " + fmt)
        if fmt == "markdown":
            _check_markdown(out, "inspect markdown")
        if fmt == "html":
            assert "<img src=x" not in out

    # audit names variables in its findings
    def dead(f):
        for n in HOSTILE.values():
            f[n].visititems(lambda k, o: o.__setitem__(Ellipsis, 0) if isinstance(o, h5py.Dataset) else None)

    c = copy_edit(a, tmp_path / "dead.h5", dead)
    for fmt in ("table", "markdown"):
        code, out, _ = cli("audit", c, "--format", fmt, "--strict")
        assert code == 1 and "\\x1b[2J" in (md_plain(out) if fmt == "markdown" else out)
        _no_control(out, "audit " + fmt)
        if fmt == "markdown":
            _check_markdown(out, "audit markdown")


def test_hostile_names_in_the_python_renderings(tmp_path):
    a = hostile_file(tmp_path, "a.h5")
    b = hostile_file(tmp_path, "b.h5", bump=True)
    res = kaudit.diff(a, b, policy=False)
    for fmt in ("table", "markdown", "csv", "html", "junit"):
        _no_control(res.render(fmt), fmt)
    _no_control(str(res), "str")
    _no_control(inspect(a).render("table"), "inspect")


def test_error_lines_escape_names(tmp_path, cli):
    evil = str(tmp_path / "x\x1b]0;pwned\x07\x1b[2J.h5")
    code, out, err = cli("inspect", evil)
    assert code == 2 and out == ""
    _no_control(err, "stderr")
    assert "\\x1b]0;pwned\\x07" in err
    code, _, err = cli("diff", TUT_FULL, evil)
    assert code == 2
    _no_control(err, "stderr")


# == 5. one verdict everywhere =====================================================================


def _verdict_words(fmt: str, out: str) -> set[str]:
    if fmt == "json":
        doc = json.loads(out)
        assert doc["verdict"] == ("PASS" if doc["passed"] else "FAIL")
        return {doc["verdict"]}
    if fmt == "junit":
        suite = ET.fromstring(out.encode())
        words = {p.get("value") for p in suite.iter("property") if p.get("name") == "verdict"}
        assert (int(suite.get("failures")) > 0) == (words == {"FAIL"})
        return words
    if fmt == "html":
        return {m.upper() for m in re.findall(r'class="verdict (pass|fail)"', out)}
    return set(re.findall(r"\b(PASS|FAIL)\b", out))


def _audit_inputs(tmp_path):
    def dead(f):
        f["model_weights/L2_dense/L2_dense/kernel:0"][:, 3] = 0

    def nan(f):
        f["model_weights/L2_dense/L2_dense/kernel:0"][0, 0] = np.nan

    return {
        "clean": TUT_FULL,
        "warning": copy_edit(TUT_FULL, tmp_path / "dead.h5", dead),
        "error": copy_edit(TUT_FULL, tmp_path / "nan.h5", nan),
    }


def test_one_verdict_for_every_command_and_format(tmp_path, cli):
    s = snap(cli, BEFORE, tmp_path / "s.json")
    diff_cases = [
        (BEFORE, BEFORE, []),
        (BEFORE, AFTER, []),
        (BEFORE, AFTER, ["--atol", "1"]),
        (s, BEFORE, []),
        (s, AFTER, ["--atol", "1"]),
        (BEFORE, AFTER, ["--ignore", "head_*/**"]),
    ]
    seen = set()
    for a, b, opts in diff_cases:
        codes = set()
        for fmt in ("table", "markdown", "json", "junit", "html"):
            code, out, _ = cli("diff", a, b, "--format", fmt, *opts)
            words = _verdict_words(fmt, out)
            assert words == {"PASS" if code == 0 else "FAIL"}, (a, b, opts, fmt, words, code)
            codes.add(code)
        code, out, _ = cli("diff", a, b, "--format", "csv", *opts)
        rows = list(csv.DictReader(io.StringIO(out)))
        assert rows and (code == 0) == all(r["passed"] == "True" for r in rows), (a, b, opts)
        codes.add(code)
        assert len(codes) == 1
        seen |= codes
    audits = _audit_inputs(tmp_path)
    for name, path in audits.items():
        for strict in ([], ["--strict"]):
            codes = set()
            for fmt in ("table", "markdown", "json"):
                code, out, _ = cli("audit", path, "--format", fmt, *strict)
                words = _verdict_words(fmt, out)
                assert words == {"PASS" if code == 0 else "FAIL"}, (name, strict, fmt, words, code)
                if fmt == "json":
                    assert json.loads(out)["passed"] == (code == 0)
                codes.add(code)
            assert len(codes) == 1
            seen |= codes
            res = audit(path, strict=bool(strict), policy=False)
            assert res.exit_code in codes and _verdict_words("table", res.render()) == {res.verdict}
    assert seen == {0, 1}


# == 6. the policy is named, and the CLI and the API apply the same one ==============================

FROZEN_HEAD = """
[[rules]]
path = "head_*/**"
frozen = true
[[rules]]
path = "backbone/**"
atol = 1
"""


def _policy_names(cli, args, expect):
    for fmt in ("table", "markdown", "html", "json", "junit"):
        _, out, _ = cli(*args, "--format", fmt)
        if fmt == "json":
            assert json.loads(out)["policy"]["description"].startswith(expect), out
        else:
            assert expect in (md_plain(out) if fmt == "markdown" else html.unescape(out)), (fmt, expect)


def test_every_report_names_the_policy(tmp_path, cli):
    cfg = tmp_path / "kaudit.toml"
    cfg.write_text(FROZEN_HEAD)
    _policy_names(cli, ("diff", BEFORE, AFTER, "--config", str(cfg)), f"{cfg} (2 rules)")
    _policy_names(cli, ("diff", BEFORE, AFTER, "--no-config"), "none")
    _policy_names(cli, ("diff", BEFORE, AFTER, "--no-config", "--tol", "head_*/**=1"), "none + 1 rule from options")
    for fmt in ("table", "markdown", "json"):
        code, out, _ = cli("audit", TUT_FULL, "--config", str(cfg), "--format", fmt)
        assert code == 0 and str(cfg) in (md_plain(out) if fmt == "markdown" else out), fmt
    code, out, err = cli("diff", BEFORE, AFTER, "--config", str(cfg), "--no-config")
    assert code == 2 and out == "" and "exclude each other" in err


def test_cli_and_api_apply_the_same_policy(tmp_path, cli, monkeypatch):
    proj = tmp_path / "proj"
    (proj / ".git").mkdir(parents=True)
    (proj / "kaudit.toml").write_text(FROZEN_HEAD)
    work = proj / "sub"
    work.mkdir()
    monkeypatch.chdir(work)
    for b, opts in ((AFTER, {}), (BEFORE, {}), (AFTER, {"atol": 1.0})):
        args = ["diff", BEFORE, b, "--format", "json"] + (["--atol", str(opts["atol"])] if opts else [])
        code, out, _ = cli(*args)
        res = kaudit.diff(BEFORE, b, **opts)
        assert res.exit_code == code, (b, opts)
        assert res.to_dict()["policy"] == json.loads(out)["policy"]
        assert res.policy["source"] == str(proj / "kaudit.toml")
    # the pytest helper too
    with pytest.raises(AssertionError, match="frozen"):
        assert_checkpoints_match(BEFORE, AFTER, atol=1)
    # and audit: fail_on in the policy file
    (proj / "kaudit.toml").write_text("fail_on = ['dead_units']\n")
    dead = _audit_inputs(tmp_path)["warning"]
    code = cli("audit", dead)[0]
    assert code == 1 == audit(dead).exit_code
    assert cli("audit", dead, "--no-config")[0] == 0 == audit(dead, policy=False).exit_code


def test_broken_pyproject_is_an_error_not_no_policy(tmp_path, cli, monkeypatch):
    (tmp_path / ".git").mkdir()
    (tmp_path / "pyproject.toml").write_text("[tool.kaudit\nrules = 3\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("diff", BEFORE, BEFORE)
    assert code == 2 and out == "" and "pyproject.toml" in err and "not valid TOML" in err


# == 7. every summary figure means what its words say ================================================


def _expected_summary(res, ignored_paths: set[str]) -> dict:
    rows = res.records
    from kaudit.result import STATUSES

    exp = {s: sum(r.status == s for r in rows) for s in STATUSES}
    exp.update(
        pairs=len(rows),
        failed=sum(not r.passed for r in rows),
        trainable_changed=sum(r.trainable_changed is True for r in rows),
        elements_over_tolerance=sum(int(r.n_exceed) for r in rows if r.n_exceed is not None),
        unverified=sum(r.n_exceed is None and r.status in ("changed", "dtype_changed") for r in rows),
        structural=sum(r.matched_by == "structure" for r in rows),
        renamed=sum(r.matched_by == "rule" for r in rows),
        by_values=sum(r.matched_by == "values" for r in rows),
        ignored=len(ignored_paths),
    )
    return exp


def _ignored(a, b, patterns) -> set[str]:
    out = set()
    for f in (a, b):
        with kaudit.load(f) as ck:
            out |= {v.path for v in ck.model_variables if any(paths.match(p, v.path) for p in patterns)}
    return out


def _check_summary(res, ignored_paths=frozenset()):
    exp = _expected_summary(res, set(ignored_paths))
    assert {k: res.summary.get(k) for k in exp} == exp
    line = res.render("table").rstrip().splitlines()[-1]
    if exp["elements_over_tolerance"] or exp["changed"] or exp["close"] or exp["dtype_changed"]:
        assert f"{exp['elements_over_tolerance']:,} element(s) over tolerance" in line, line
    if exp["ignored"]:
        assert f"{exp['ignored']} path(s) ignored" in line, line
    if exp["by_values"]:
        assert f"{exp['by_values']} paired by identical values" in line, line
    if exp["structural"]:
        assert f"{exp['structural']} matched by structure" in line, line
    if exp["unverified"]:
        assert f"{exp['unverified']} pair(s) differ from a snapshot" in line, line
    return exp


def test_summary_figures_recomputed_from_the_rows(tmp_path):
    res = kaudit.diff(BEFORE, AFTER, policy=False)
    exp = _check_summary(res)
    assert exp["elements_over_tolerance"] == 61  # 48 + 6 + 6 + 1, not the 161 params of the 4 tensors
    res = kaudit.diff(BEFORE, AFTER, ignore=["head_*/**"], policy=False)
    exp = _check_summary(res, _ignored(BEFORE, AFTER, ["head_*/**"]))
    assert exp["ignored"] == 4  # 4 paths, in a and in b
    res = kaudit.diff(fixture("renamed/renamed_a.h5"), fixture("renamed/renamed_b.h5"), policy=False)
    assert _check_summary(res)["structural"] > 0
    s = tmp_path / "s.json"
    s.write_text(json.dumps(kaudit.snapshot(BEFORE)))
    res = kaudit.diff(str(s), AFTER, policy=False)
    assert _check_summary(res)["unverified"] == 4


def test_pairs_by_identical_values_are_shown_as_such():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(6).astype(np.float32), rng.standard_normal(6).astype(np.float32)
    a = mem({"m/x/w": x, "m/y/w": y})
    b = mem({"n/p/q": y, "n/r/q": x})
    res = kaudit.diff(a, b, policy=False)
    exp = _check_summary(res)
    assert exp["by_values"] == 2 and exp["identical"] == 2 and res.passed
    assert {(r.path, r.path_b) for r in res.records} == {("m/x/w", "n/r/q"), ("m/y/w", "n/p/q")}
    notes = " ".join(res.notes)
    assert "2 variable(s) paired by identical values" in notes and "paired by structure" not in notes
