"""Canonical variable paths as first-class values: normalise, glob-match, rename.

A canonical path is the chain of user layer names from the top model down, then the
variable's short name: ``L3_dense/kernel``, ``Inner_model/L_in_0/kernel``. There is no ``:0``,
no top-model name and no auto-generated builder prefix (see docs/formats.md).

Globs: ``*`` matches within one path component, ``**`` matches any number of components
(``backbone/**``), ``?`` one character, ``[abc]`` a set. A pattern without ``/`` that contains
no ``**`` is also tried against every suffix of the path, so ``kernel`` or ``*bn*`` match
where users would expect.
"""

from __future__ import annotations

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


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                raise ValueError(f"unclosed '[' in pattern {pattern!r}")
            body = pattern[i + 1 : j]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = j + 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def validate_pattern(pattern: str) -> None:
    """Raise ValueError for a pattern that cannot be compiled."""
    if not pattern:
        raise ValueError("empty pattern")
    _compile(pattern)


def match(pattern: str, path: str) -> bool:
    """True when ``path`` matches the glob ``pattern`` (see module docstring)."""
    rx = _compile(pattern)
    if rx.match(path):
        return True
    if SEP not in pattern and "**" not in pattern:
        parts = split(path)
        return any(rx.match(SEP.join(parts[i:])) for i in range(1, len(parts)))
    return False


def apply_rename(rules: list[tuple[str, str]] | tuple[tuple[str, str], ...], path: str) -> str:
    """Apply ``OLD=NEW`` rename rules to a path of checkpoint a, first match wins.

    ``OLD`` is a path prefix (whole components: ``dense_3`` renames ``dense_3/kernel`` but not
    ``dense_30/kernel``) or, if it contains glob characters, a glob on the whole path whose
    ``*`` parts are substituted into the ``*`` of ``NEW`` in order.
    """
    for old, new in rules:
        if any(ch in old for ch in "*?["):
            rx = _compile_capture(old)
            m = rx.match(path)
            if m:
                groups = iter(m.groups())
                return re.sub(r"\*\*|\*", lambda _m: next(groups, ""), new)
        else:
            o = old.strip(SEP)
            if path == o:
                return new.strip(SEP)
            if path.startswith(o + SEP):
                return join(new, path[len(o) + 1 :])
    return path


@lru_cache(maxsize=1024)
def _compile_capture(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append("(.*)")
            i += 2
        elif pattern[i] == "*":
            out.append("([^/]*)")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def safe_filename(path: str, suffix: str = "") -> str:
    """A file-system-safe name derived from a variable path: ``a/b:c`` -> ``a__b_c``."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", path.replace(SEP, "__")).strip("._") or "variable"
    return name[:180] + suffix
