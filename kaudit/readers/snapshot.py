"""A ``kaudit snapshot`` baseline read back as a Checkpoint without values."""

from __future__ import annotations

from ..checkpoint import Checkpoint, Variable
from ..errors import CorruptFileError, KauditError
from ..schema import SNAPSHOT_VERSION


class SnapshotStore:
    """Knows each variable's hash and summary statistics, not its values."""

    has_values = False

    def __init__(self, rows: dict[str, dict], display: str):
        self._rows = rows
        self._display = display

    def digest(self, var: Variable) -> str:
        return self._rows[var.location]["sha256"]

    def stats(self, var: Variable) -> dict:
        return self._rows[var.location]

    def _no_values(self, var: Variable):
        raise KauditError(f"{var.path!r}: a snapshot keeps hashes and statistics, not values",
                          path=self._display, hint="compare against the full checkpoint for element-wise figures")

    def read(self, var: Variable, selection: tuple = ()):
        self._no_values(var)

    def iter_blocks(self, var: Variable, block_elems: int):
        self._no_values(var)

    def close(self) -> None:
        pass


def load(path: str, display: str, doc: dict) -> Checkpoint:

    if doc.get("version") != SNAPSHOT_VERSION:
        raise CorruptFileError(f"snapshot version {doc.get('version')!r} is not supported (expected {SNAPSHOT_VERSION})",
                               path=display, hint="re-create it with this kaudit: kaudit snapshot FILE -o baseline.json")
    raw = doc.get("variables")
    if not isinstance(raw, list):
        raise CorruptFileError("snapshot has no 'variables' list", path=display)
    variables, rows = [], {}
    for i, r in enumerate(raw):
        try:
            v = Variable(
                path=str(r["path"]), layer=str(r.get("layer", "")), layer_class=r.get("layer_class"),
                name=str(r.get("name", str(r["path"]).rsplit("/", 1)[-1])),
                shape=tuple(int(d) for d in r["shape"]), dtype=str(r["dtype"]), trainable=r.get("trainable"),
                kind=str(r.get("kind", "model")), location=f"snapshot[{i}]", named=bool(r.get("named", True)),
            )
            if not isinstance(r["sha256"], str):
                raise TypeError("sha256")
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptFileError(f"snapshot variable #{i} is malformed ({exc})", path=display) from None
        variables.append(v)
        rows[v.location] = r
    return Checkpoint(display, "kaudit-snapshot", tuple(variables), SnapshotStore(rows, display),
                      doc.get("keras_version"), bool(doc.get("has_config")), ("values are not stored in a snapshot",),
                      (display,))
