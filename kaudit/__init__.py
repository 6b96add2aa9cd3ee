"""kaudit: diff and audit Keras/TensorFlow model files, straight from the file.

    >>> import kaudit
    >>> ckpt = kaudit.load("fixtures/tutorial/k2_full.h5")      # the variable table
    >>> result = kaudit.diff("a.h5", "b.keras", atol=1e-6)       # an immutable DiffResult
    >>> result.passed, result.table

Importing kaudit is cheap: pandas, h5py and friends load when first used, and TensorFlow only
for TensorFlow checkpoints and SavedModels.
"""

from __future__ import annotations

from ._version import __version__

__all__ = ["KauditError", "__version__", "audit", "diff", "load", "montage", "snapshot"]

from . import report as _report  # noqa: F401  (registers the renderers results use: kaudit/views.py)
from .errors import KauditError


def load(path):
    """Read a checkpoint file into a :class:`kaudit.checkpoint.Checkpoint`."""
    from .readers import load as _load

    return _load(path)


def diff(a, b, **options):
    """Compare two checkpoints (paths or Checkpoints); see :func:`kaudit.compare.diff`."""
    from .compare import diff as _diff

    return _diff(a, b, **options)


def montage(a, b=None, **options):
    """Draw conv kernels as the tutorial does; see :func:`kaudit.montages.montage`."""
    from .montages import montage as _montage

    return _montage(a, b, **options)


def snapshot(path, **options):
    """A baseline (hashes and statistics per variable); see :func:`kaudit.baseline.snapshot`."""
    from .baseline import snapshot as _snapshot

    return _snapshot(path, **options)


def audit(path, **options):
    """Health checks of one checkpoint; see :func:`kaudit.health.audit`."""
    from .health import audit as _audit

    return _audit(path, **options)
