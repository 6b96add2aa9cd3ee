"""One file's layers read on two cores: a reader's per-layer loop, split in two halves.

A reader reads the head of a file (the model config, the list of layers) and then walks its
layers in order, which for a model of thousands of small layers is most of the work and all
of it Python. Where readers/pair.py allows it, :func:`run` forks a child (``kaudit/_fork.py``)
at the start of that loop: the child walks the second half of the layers, the parent the
first, and the child sends back what it added (variables, notes, where each dataset lies, and
whether the twin file being checked still matched) as plain ``marshal`` data. The parent
joins it after its own half, in order, so the result is the one the loop gives when run here.

The child inherits everything read so far (the parsed head, the parser's objects) and only ever
works on files the pure-Python parser opened (``_h5parse``): never the HDF5 library, which no
watchdog watches there. If the child fails in any way, the parent walks the second half itself,
so errors are raised, in order, exactly as without the split.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from .. import _fork
from ..checkpoint import _VARIABLE_FIELDS, Variable
from . import _h5parse as P
from . import _hdf5 as H

#: Loops shorter than this run here: a fork costs ~2 ms, more than a few dozen layers take.
MIN_ITEMS = 64

_allowed = False
_instead: Callable[[object], bool] | None = None


@contextlib.contextmanager
def allowed(instead: Callable[[object], bool] | None = None) -> Iterator[None]:
    """Let the next loading (in this block) split its layer loop, once. ``instead(store)``, if
    given, is asked first, at the fork point: when it returns True it has put the second core to
    other work (readers/pair.py: reading the other file) and the loop runs here whole."""
    global _allowed, _instead
    before = _allowed, _instead
    _allowed, _instead = True, instead
    try:
        yield
    finally:
        _allowed, _instead = before


def disallow() -> None:
    """No split in this process (a child reading a whole file: a third process would only compete)."""
    global _allowed, _instead
    _allowed, _instead = False, None


def run(n: int, body: Callable[[int], None], out: list[Variable], notes: list[str], store) -> None:
    """``body(i)`` for i in range(n), in order. ``body`` adds the layer's variables to ``out``
    (registering each in ``store``) and its notes to ``notes``, and touches nothing else that
    outlives the loop."""
    global _allowed, _instead
    if not (_allowed and n >= MIN_ITEMS and _fork.available() and _parsed(store)):
        for i in range(n):
            body(i)
        return
    _allowed = False  # once per load: a nested model's loop runs as it is
    instead, _instead = _instead, None
    if instead is not None and instead(store):
        for i in range(n):
            body(i)
        return
    half = n // 2
    k_out, k_notes = len(out), len(notes)

    def second_half() -> dict:
        for root in store.files:  # (what a difference found here means is for the parent to act on)
            root.file.image.on_differ = None
        for i in range(half, n):
            body(i)
        return _encode(out[k_out:], notes[k_notes:], store)

    with _fork.forked(second_half) as child:
        for i in range(half):
            body(i)
        doc = child.result()
    if doc is None:  # the child failed (or sent nothing): walk the second half here, errors and all
        for i in range(half, n):
            body(i)
        return
    out.extend(map(Variable.from_fields, doc["variables"]))
    notes.extend(doc["notes"])
    store.import_layouts(*doc["layouts"])
    for root, same in zip(store.files, doc["twins"], strict=True):
        if same is False:
            root.file.image.twin_differs()


def _parsed(store) -> bool:
    return isinstance(store, H.H5Store) and all(type(f) is P.Group for f in store.files)


def _encode(new: list[Variable], notes: list[str], store) -> dict:
    return {
        "variables": [tuple(getattr(v, f) for f in _VARIABLE_FIELDS) for v in new],
        "notes": list(notes),
        "layouts": store.export_layouts([v.location for v in new]),
        "twins": [root.file.image.twin_same for root in store.files],
    }
