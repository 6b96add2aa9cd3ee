"""Regression tests for fine-tuning code, in any pytest suite.

    from kaudit.testing import assert_checkpoints_match

    def test_only_the_head_trains(tmp_path):
        train_head(out=tmp_path / "after.h5")       # your code
        assert_checkpoints_match("before.h5", tmp_path / "after.h5", policy={
            "rules": [{"path": "backbone/**", "frozen": True},
                      {"path": "head/**", "must_change": True}]})

On failure an ``AssertionError`` carries kaudit's table of what differs and which rule failed.
"""

from __future__ import annotations

from .compare import diff
from .result import DiffResult


def assert_checkpoints_match(a, b, *, policy=None, **options) -> DiffResult:
    """Diff ``a`` and ``b`` (paths or Checkpoints) and raise AssertionError unless the result
    passes. ``policy`` is resolved as by ``kaudit.diff`` and the command line
    (:func:`kaudit.policy.resolve`): a :class:`~kaudit.policy.Policy`, a dict shaped like
    ``[tool.kaudit]`` or a path to a TOML policy; ``None`` (the default) discovers the repository's
    ``kaudit.toml`` / ``[tool.kaudit]`` from the working directory, as ``kaudit diff`` does;
    ``False`` applies none. Other options are those of ``kaudit.diff`` (``atol``, ``rtol``, ``tol``,
    ``ignore``, ``rename``...). Returns the result when it passes."""
    result = diff(a, b, policy=policy, **options)
    if not result.passed:
        raise AssertionError("checkpoints do not match the policy:\n" + result.render("table"))
    return result
