"""Canonical variable paths as first-class values: normalise, glob-match, rename.

A canonical path is the chain of user layer names from the top model down, then the
variable's short name: ``L3_dense/kernel``, ``Inner_model/L_in_0/kernel``. There is no ``:0``,
no top-model name and no auto-generated builder prefix (see docs/formats.md).

Globs: ``*`` matches within one path component, ``**`` as a whole component matches any number
of components (``backbone/**``: one or more at the end), ``?`` one character, ``[abc]`` a set,
``[!abc]`` its complement; each component is translated by ``fnmatch.translate``. A pattern without ``/`` that contains
no ``**`` is also tried against every suffix of the path, so ``kernel`` or ``*bn*`` match
where users would expect.
"""

from __future__ import annotations

import fnmatch
import re
from functools import lru_cache

SEP = "/"
_SUFFIX_RE = re.compile(r":\d+$")


#: Variable names that Keras 2 and Keras 3 spell differently for the same variable
#: (DepthwiseConv kernels); alignment and naming treat them as one.
NAME_ALIASES = {"depthwise_kernel": "kernel"}


def alias_name(name: str) -> str:
    """A variable short name in the spelling shared by Keras 2 and 3 (``depthwise_kernel`` ->
    ``kernel``)."""
    return NAME_ALIASES.get(name, name)


def strip_device_suffix(name: str) -> str:
    """``L3_dense/kernel:0`` -> ``L3_dense/kernel``."""
    return _SUFFIX_RE.sub("", name)


def split(path: str) -> list[str]:
    return [p for p in path.split(SEP) if p]


def join(*parts: str) -> str:
    if len(parts) == 2:  # the common case, without a generator: plain names, or one of them empty
        a, b = parts
        if not a:
            if b and b[0] != SEP and b[-1] != SEP:
                return b
        elif a[0] != SEP and a[-1] != SEP:
            if not b:
                return a
            if b[0] != SEP and b[-1] != SEP:
                return a + SEP + b
    return SEP.join(p.strip(SEP) for p in parts if p and p.strip(SEP))


def layer_of(path: str) -> str:
    """The layer path of a variable path: everything but the last component."""
    return path.rsplit(SEP, 1)[0] if SEP in path else ""


def short_name(path: str) -> str:
    return path.rsplit(SEP, 1)[-1]


def _scan(component: str) -> tuple[list[str], bool]:
    """(``component`` split at its ``*`` wildcards, not at a ``*`` inside a ``[...]`` set;
    whether a ``[`` opens no set), by the rule ``fnmatch`` itself scans sets with: ``]`` right
    after ``[`` or ``[!`` belongs to the set, and a ``[`` with no closing ``]`` is a plain
    character."""
    pieces, cur, i, n, unclosed = [], "", 0, len(component), False
    while i < n:
        ch = component[i]
        if ch == "*":
            pieces.append(cur)
            cur = ""
            i += 1
            continue
        if ch == "[":
            j = i + 1
            if j < n and component[j] == "!":
                j += 1
            if j < n and component[j] == "]":
                j += 1
            while j < n and component[j] != "]":
                j += 1
            if j < n:  # a whole set, kept for fnmatch
                cur += component[i : j + 1]
                i = j + 1
                continue
            unclosed = True
        cur += ch
        i += 1
    pieces.append(cur)
    return pieces, unclosed


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> tuple[re.Pattern[str] | None, ...]:
    """One regular expression per component of ``pattern`` (None for ``**``), each matching a
    single path component and capturing what every ``*`` matched. The text between wildcards
    is translated by the standard library (``fnmatch.translate``: ``?``, ``[abc]``, ``[!abc]``,
    escapes); a component never contains ``/``, so nothing can match across components."""
    if not pattern:
        raise ValueError("empty pattern")
    out: list[re.Pattern[str] | None] = []
    for comp in pattern.split(SEP):
        if comp == "**":
            out.append(None)
            continue
        parts = [fnmatch.translate(p).removesuffix(r"\Z") for p in _scan(comp.replace("**", "*"))[0]]
        out.append(re.compile("(.*)".join(parts) + r"\Z", re.DOTALL))
    return tuple(out)


def _match_parts(comps: tuple[re.Pattern[str] | None, ...], parts: list[str]) -> list[str] | None:
    """What each wildcard captured when the path components ``parts`` match the compiled
    pattern ``comps`` (``**`` spans zero or more components, one or more as the last one),
    else None."""
    failed: set[tuple[int, int]] = set()

    def go(i: int, j: int) -> list[str] | None:
        if i == len(comps):
            return [] if j == len(parts) else None
        if (i, j) in failed:
            return None
        rx = comps[i]
        if rx is None:
            least = 1 if i == len(comps) - 1 else 0
            for k in range(len(parts), j + least - 1, -1):  # longest first, as ``.*`` did
                rest = go(i + 1, k)
                if rest is not None:
                    return [SEP.join(parts[j:k]), *rest]
        elif j < len(parts):
            m = rx.match(parts[j])
            if m:
                rest = go(i + 1, j + 1)
                if rest is not None:
                    return [*m.groups(), *rest]
        failed.add((i, j))
        return None

    return go(0, 0)


def validate_pattern(pattern: str) -> None:
    """Raise ValueError for an empty pattern, or one with a ``[`` that opens no set (fnmatch
    would take it as a plain ``[``; in a policy it is a typo far more often: write ``[[]``)."""
    _compile(pattern)
    if any(_scan(comp)[1] for comp in pattern.split(SEP)):
        raise ValueError("'[' opens no set; a literal '[' is written '[[]'")


def match(pattern: str, path: str) -> bool:
    """True when ``path`` matches the glob ``pattern`` (see module docstring)."""
    comps = _compile(pattern)
    parts = path.split(SEP)
    if _match_parts(comps, parts) is not None:
        return True
    if SEP not in pattern and "**" not in pattern:
        return any(_match_parts(comps, parts[i:]) is not None for i in range(1, len(parts)))
    return False


def _substitute(new: str, captured: list[str]) -> str:
    """``new`` with its ``*``/``**`` replaced by the captured parts, in order."""
    parts = iter(captured)
    return re.sub(r"\*\*|\*", lambda _m: next(parts, ""), new)


def apply_rename(rules: list[tuple[str, str]] | tuple[tuple[str, str], ...], path: str) -> str:
    """Apply ``OLD=NEW`` rename rules to a path of checkpoint a, first match wins.

    ``OLD`` is a path prefix (whole components: ``dense_3`` renames ``dense_3/kernel`` but not
    ``dense_30/kernel``) or, if it contains glob characters, a glob on the whole path whose
    ``*`` parts are substituted into the ``*`` of ``NEW`` in order.
    """
    for old, new in rules:
        if any(ch in old for ch in "*?["):
            captured = _match_parts(_compile(old.strip(SEP)), path.split(SEP))
            if captured is not None:
                return _substitute(new, captured)
        else:
            o = old.strip(SEP)
            if path == o:
                return new.strip(SEP)
            if path.startswith(o + SEP):
                return join(new, path[len(o) + 1 :])
    return path


def safe_filename(path: str, suffix: str = "") -> str:
    """A file-system-safe name derived from a variable path: ``a/b:c`` -> ``a__b_c``."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", path.replace(SEP, "__")).strip("._") or "variable"
    return name[:180] + suffix
