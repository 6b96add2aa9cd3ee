"""Globs on variable paths (kaudit/paths.py): fnmatch's semantics per component, ``**`` across them."""

from __future__ import annotations

import fnmatch
import json
import random

import pytest

from kaudit import paths as P

from .conftest import fixture

TUTORIAL = fixture("tutorial/k2_full.h5")


def test_one_component_matches_exactly_as_fnmatch():
    """Random patterns made of the characters that matter ([ ] ! * ? - ^ \\ .) over random names."""
    rnd = random.Random(1)
    for _ in range(5000):
        pat = "".join(rnd.choice("ab[]!*?-^\\.") for _ in range(rnd.randint(1, 6)))
        name = "".join(rnd.choice("ab[]!-^\\.") for _ in range(rnd.randint(0, 5)))
        assert P.match(pat, name) == fnmatch.fnmatchcase(name, pat), (pat, name)


@pytest.mark.parametrize(
    "pattern, path, expected",
    [
        ("backbone/**", "backbone/conv/kernel", True),
        ("backbone/**", "backbone", False),  # a trailing ** is one component or more
        ("backbone/**", "backbone_2/conv/kernel", False),
        ("**/moving_*", "bn/moving_mean", True),
        ("**/moving_*", "moving_mean", True),  # a leading ** may be none
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("head/*", "head/out/kernel", False),  # * stays inside one component
        ("kernel", "inner/dense/kernel", True),  # no / and no **: any trailing part
        ("dense/kernel", "inner/dense/kernel", False),
        ("dense_[12]/*", "dense_1/kernel", True),
        ("dense_[12]/*", "dense_3/kernel", False),
        ("[!d]*/kernel", "e1/kernel", True),
        ("[!d]*/kernel", "d1/kernel", False),
        ("a[]b", "a[]b", True),  # no closing ]: a plain [, as fnmatch says
        ("a?c/k", "a/c/k", False),  # ? never matches the separator
    ],
)
def test_globs_on_paths(pattern, path, expected):
    assert P.match(pattern, path) is expected


def test_rename_captures_wildcards_in_order():
    assert P.apply_rename([("dense_[12]/*", "fc_*/w")], "dense_1/kernel") == "fc_kernel/w"
    assert P.apply_rename([("dense_[12]/*", "fc_*/w")], "dense_3/kernel") == "dense_3/kernel"
    assert P.apply_rename([("dense_*/**", "fc_*/**")], "dense_3/a/kernel") == "fc_3/a/kernel"
    assert P.apply_rename([("dense_3", "fc")], "dense_3/kernel") == "fc/kernel"
    assert P.apply_rename([("dense_3", "fc")], "dense_30/kernel") == "dense_30/kernel"


@pytest.mark.parametrize("pattern", ["", "a/[b", "a[]b", "x/[!]"])
def test_patterns_a_policy_refuses(pattern):
    """Empty, or a ``[`` that opens no set (fnmatch would read a plain ``[``: a typo, far more often)."""
    with pytest.raises(ValueError):
        P.validate_pattern(pattern)
    P.validate_pattern("a[]b]")
    P.validate_pattern("a/[[]b")


def test_cli_takes_any_glob(cli):
    """``--ignore 'a[]b'`` was an internal error (exit 2, "this is a bug"); a set in ``--rename``
    never matched."""
    code, out, err = cli("diff", TUTORIAL, TUTORIAL, "--ignore", "a[]b")
    assert code == 2 and "opens no set" in err and "bug" not in err and len(err.splitlines()) == 1
    code, out, err = cli("diff", TUTORIAL, TUTORIAL, "--ignore", "a[]b]")
    assert code == 0, err
    a, b = fixture("renamed/renamed_a.h5"), fixture("renamed/renamed_b.h5")
    args = ("diff", a, b, "--no-structural", "--format", "json", "--allow-added", "--allow-removed")
    code, out, err = cli(*args, "--rename", "dense_[1]/*=dense_4/*")
    assert code == 0, err
    rows = {r["path"]: r for r in json.loads(out)["variables"]}
    assert rows["dense_1/kernel"]["path_b"] == "dense_4/kernel" and rows["dense_1/kernel"]["matched_by"] == "rule"
    assert rows["dense_1/bias"]["path_b"] == "dense_4/bias"
