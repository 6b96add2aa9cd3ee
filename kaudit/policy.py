"""Tolerances and rules: what a diff must satisfy to pass.

A :class:`Policy` is a default ``atol``/``rtol`` plus an ordered list of :class:`Rule`, each
with a glob on variable paths (``kaudit.paths``). It comes from command-line options, from
``[tool.kaudit]`` in ``pyproject.toml`` or a ``kaudit.toml`` (see docs/policy.md), or both:
options given on the command line override the file's defaults, and ``--tol`` rules come after
the file's rules.

Precedence (documented and tested):

* tolerance: the LAST matching rule that sets a tolerance (``atol``/``rtol``) or ``frozen`` wins;
  without one, the policy's default ``atol``/``rtol``;
* ``frozen``: the variable must be bit-identical (``identical``); ``close`` is a failure;
* ``must_change``: every matching rule applies; the variable must differ by more than its
  threshold (``max_abs > threshold``; ``true`` means ``> 0``); a variable expected to change is
  not held to the value tolerance (unless a ``frozen`` rule also matches it, which then fails);
* ``trainable``: every matching rule applies; the variable's trainable flag in b must equal it;
* ``ignore``: any matching rule removes the variable from the comparison;
* allowances (``allow_added``, ``allow_removed``, ``allow_trainable_change``) are policy-wide;
* LoRA (policy-wide): ``adapters_only`` - every weight that does not carry a LoRA adapter must be
  bit-identical, the adapted ones may change (they are not held to the tolerance);
  ``max_adapter_change`` - an adapted weight's change ΔW (b - a: its adapter merged in) may not
  exceed this relative size ‖ΔW‖ / ‖W‖ (``rel_l2``).

Where the policy comes from is decided once, by :func:`resolve`, for the command line and the
Python API alike: a ``kaudit.toml`` or ``[tool.kaudit]`` found from the working directory upward
(to the repository root) unless a policy is given or ``False`` turns files off. Every report names
the policy applied (:meth:`Policy.describe`).
"""

from __future__ import annotations

import contextlib
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import paths
from .errors import PolicyError

RULE_KEYS = {"path", "atol", "rtol", "frozen", "must_change", "trainable", "ignore", "name"}
TOP_KEYS = {
    "atol",
    "rtol",
    "allow_added",
    "allow_removed",
    "allow_trainable_change",
    "nan_equal",
    "rename",
    "rules",
    "fail_on",
    "adapters_only",
    "max_adapter_change",
}


@dataclass(frozen=True)
class Rule:
    pattern: str
    atol: float | None = None
    rtol: float | None = None
    frozen: bool = False
    must_change: float | None = None  # threshold on max_abs; None: no such requirement
    trainable: bool | None = None
    ignore: bool = False
    source: str = ""
    name: str | None = None

    @property
    def sets_tolerance(self) -> bool:
        return self.frozen or self.atol is not None or self.rtol is not None

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        what = []
        if self.frozen:
            what.append("frozen")
        if self.must_change is not None:
            what.append("must_change" + (f">{self.must_change:g}" if self.must_change else ""))
        if self.trainable is not None:
            what.append(f"trainable={str(self.trainable).lower()}")
        if self.atol is not None or self.rtol is not None:
            what.append(f"atol={self.atol or 0:g},rtol={self.rtol or 0:g}")
        if self.ignore:
            what.append("ignore")
        return f"{self.pattern} {' '.join(what)}".strip()


@dataclass(frozen=True)
class Policy:
    atol: float = 0.0
    rtol: float = 0.0
    rules: tuple[Rule, ...] = ()
    allow_added: bool = False
    allow_removed: bool = False
    allow_trainable_change: bool = False
    equal_nan: bool = True
    source: str | None = None
    rename: tuple[tuple[str, str], ...] = field(default=())
    #: ``kaudit audit`` checks that fail whatever their severity (docs/audit.md).
    fail_on: tuple[str, ...] = ()
    #: LoRA: only weights that carry an adapter may change (the others bit-identical).
    adapters_only: bool = False
    #: LoRA: bound on an adapted weight's relative change ‖b - a‖ / ‖a‖; None: no bound.
    max_adapter_change: float | None = None

    def __post_init__(self) -> None:
        for name in ("atol", "rtol", "max_adapter_change"):
            v = getattr(self, name)
            if v is None and name == "max_adapter_change":
                continue
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
                raise PolicyError(f"{name} must be a finite number >= 0, got {v!r}", path=self.source)

    # -- lookups ---------------------------------------------------------------------------
    def matching(self, path: str) -> list[Rule]:
        return [r for r in self.rules if paths.match(r.pattern, path)]

    def ignored(self, path: str) -> bool:
        return any(r.ignore for r in self.matching(path))

    def tolerance_for(self, path: str) -> tuple[float, float, Rule | None]:
        chosen = None
        for r in self.matching(path):
            if r.sets_tolerance:
                chosen = r
        if chosen is None:
            return self.atol, self.rtol, None
        if chosen.frozen:
            return 0.0, 0.0, chosen
        return (
            chosen.atol if chosen.atol is not None else self.atol,
            chosen.rtol if chosen.rtol is not None else self.rtol,
            chosen,
        )

    # -- building --------------------------------------------------------------------------
    def with_options(
        self,
        *,
        atol=None,
        rtol=None,
        tol=(),
        ignore=(),
        allow_added=False,
        allow_removed=False,
        allow_trainable_change=False,
        equal_nan=None,
        rename=(),
        adapters_only=False,
        max_adapter_change=None,
    ) -> Policy:
        """This policy with command-line options applied on top."""
        extra = tuple(parse_tol(t) for t in tol) + tuple(
            Rule(pattern=_checked_glob(p, "--ignore"), ignore=True, source=OPTION_SOURCES[1]) for p in ignore
        )
        return replace(
            self,
            atol=self.atol if atol is None else float(atol),
            rtol=self.rtol if rtol is None else float(rtol),
            rules=self.rules + extra,
            allow_added=self.allow_added or allow_added,
            allow_removed=self.allow_removed or allow_removed,
            allow_trainable_change=self.allow_trainable_change or allow_trainable_change,
            equal_nan=self.equal_nan if equal_nan is None else bool(equal_nan),
            rename=self.rename + tuple(rename),
            adapters_only=self.adapters_only or bool(adapters_only),
            max_adapter_change=(self.max_adapter_change if max_adapter_change is None else float(max_adapter_change)),
        )

    def describe(self, audit: bool = False) -> str:
        """One line naming the policy: its file (or ``in code`` / ``none``) and number of rules,
        the rules added by options (``--tol``/``--ignore``, ``tol=``/``ignore=``), and the default
        tolerance; for ``kaudit audit`` the file and its ``fail_on`` checks."""
        n_opt = sum(r.source in OPTION_SOURCES for r in self.rules)
        n_own = len(self.rules) - n_opt
        if audit:
            return (self.source or "none") + (f"; fail_on: {', '.join(self.fail_on)}" if self.fail_on else "")
        if self.source:
            head = f"{self.source} ({_rules(n_own)})"
        else:
            head = f"in code ({_rules(n_own)})" if n_own else "none"
        if n_opt:
            head += f" + {_rules(n_opt)} from options"
        lora = ""
        if self.adapters_only:
            lora += "; adapters_only"
        if self.max_adapter_change is not None:
            lora += f"; max_adapter_change={self.max_adapter_change:g}"
        return f"{head}; atol={self.atol:g} rtol={self.rtol:g}{lora}"

    def as_dict(self) -> dict:
        return {
            "description": self.describe(),
            "atol": self.atol,
            "rtol": self.rtol,
            "allow_added": self.allow_added,
            "allow_removed": self.allow_removed,
            "allow_trainable_change": self.allow_trainable_change,
            "equal_nan": self.equal_nan,
            "source": self.source,
            "rules": [r.label for r in self.rules],
            "rename": [f"{o}={n}" for o, n in self.rename],
            "fail_on": list(self.fail_on),
            "adapters_only": self.adapters_only,
            "max_adapter_change": self.max_adapter_change,
        }


#: ``Rule.source`` of rules that come from options rather than from the policy itself.
OPTION_SOURCES = ("--tol", "--ignore")


def _rules(n: int) -> str:
    return f"{n} rule{'' if n == 1 else 's'}"


def _checked_glob(pattern: str, where: str) -> str:
    try:
        paths.validate_pattern(pattern)
    except ValueError as exc:
        raise PolicyError(f"{where}: bad pattern {pattern!r} ({exc})", hint="globs use *, ** and ?") from None
    return pattern


def _number(value, where: str, source: str | None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise PolicyError(f"{where} must be a number, got {value!r}", path=source)
    try:
        f = float(value)
    except ValueError:
        raise PolicyError(f"{where} must be a number, got {value!r}", path=source, hint="e.g. 1e-6") from None
    if not math.isfinite(f) or f < 0:
        raise PolicyError(f"{where} must be a finite number >= 0, got {value!r}", path=source)
    return f


def parse_tol(spec: str) -> Rule:
    """``--tol 'PATTERN=ATOL[,RTOL]'``."""
    if "=" not in spec:
        raise PolicyError(f"--tol {spec!r}: expected PATTERN=ATOL[,RTOL]", hint="e.g. --tol '**/moving_*=1e-3,1e-2'")
    pattern, _, nums = spec.rpartition("=")
    parts = [p.strip() for p in nums.split(",")]
    if not pattern or len(parts) not in (1, 2) or not parts[0]:
        raise PolicyError(f"--tol {spec!r}: expected PATTERN=ATOL[,RTOL]", hint="e.g. --tol 'head/**=1e-4'")
    atol = _number(parts[0], f"--tol {spec!r} atol", None)
    rtol = _number(parts[1], f"--tol {spec!r} rtol", None) if len(parts) == 2 else None
    return Rule(pattern=_checked_glob(pattern, "--tol"), atol=atol, rtol=rtol, source=OPTION_SOURCES[0])


def parse_rename(spec: str) -> tuple[str, str]:
    if "=" not in spec:
        raise PolicyError(f"--rename {spec!r}: expected OLD=NEW", hint="e.g. --rename dense_3=dense_7")
    old, _, new = spec.partition("=")
    if not old:
        raise PolicyError(f"--rename {spec!r}: OLD is empty", hint="e.g. --rename dense_3=dense_7")
    return old, new


# -- policy files ----------------------------------------------------------------------------


def find_config(start: str | os.PathLike = ".") -> Path | None:
    """kaudit.toml, or a pyproject.toml with [tool.kaudit], in ``start`` or its parents up to the
    repository root (the first directory holding ``.git``). A pyproject.toml that cannot be read
    is an error, not "no policy": it may hold the rules the verdict depends on."""
    p = Path(start).resolve()
    for d in (p, *p.parents):
        k = d / "kaudit.toml"
        if k.is_file():
            return k
        pp = d / "pyproject.toml"
        if pp.is_file():
            with _reading(pp), open(pp, "rb") as fh:
                tool = tomllib.load(fh).get("tool", {})
            if isinstance(tool, dict) and "kaudit" in tool:
                return pp
        if (d / ".git").exists():
            break
    return None


def resolve(policy=None, start: str | os.PathLike | None = None) -> Policy:
    """The policy a diff or an audit applies, the same way for the command line and the API:

    * ``None``: discover ``kaudit.toml`` / ``[tool.kaudit]`` from ``start`` (default: the working
      directory) upward, as ``kaudit diff`` does without ``--config``; the defaults when none;
    * ``False``: no policy file (``--no-config``): the defaults;
    * a :class:`Policy`: itself; a mapping shaped like ``[tool.kaudit]``: that policy;
    * a path (str or PathLike): that TOML file (``--config FILE``).
    """
    if policy is None:
        found = find_config(os.getcwd() if start is None else start)
        return load_policy(found) if found else Policy()
    if policy is False:
        return Policy()
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, Mapping):
        return policy_from_mapping(dict(policy))
    if isinstance(policy, (str, os.PathLike)):
        return load_policy(policy)
    raise PolicyError(
        f"policy must be a Policy, a mapping, a path to a TOML file, None (discover) or False (none), "
        f"not {type(policy).__name__}"
    )


@contextlib.contextmanager
def _reading(path):
    """The errors of reading a policy file as one-line PolicyErrors naming it."""
    src = str(path)
    try:
        yield
    except FileNotFoundError:
        raise PolicyError("policy file not found", path=src, hint="check --config") from None
    except OSError as exc:
        raise PolicyError(f"cannot read policy file ({exc.strerror})", path=src) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PolicyError(f"is not valid TOML ({exc})", path=src) from None


def load_policy(path: str | os.PathLike) -> Policy:
    """Read a policy from a kaudit.toml (top level or [tool.kaudit]) or pyproject.toml."""
    src = str(path)
    with _reading(src), open(path, "rb") as fh:
        doc = tomllib.load(fh)
    tool = doc.get("tool", {})
    table = tool.get("kaudit") if isinstance(tool, dict) else None
    if table is None:
        if Path(src).name == "pyproject.toml":
            raise PolicyError("has no [tool.kaudit] table", path=src, hint="add one, see docs/policy.md")
        table = doc
    return policy_from_mapping(table, src)


def policy_from_mapping(table: dict, source: str | None = None) -> Policy:
    if not isinstance(table, dict):
        raise PolicyError("the kaudit policy must be a table", path=source)
    unknown = set(table) - TOP_KEYS
    if unknown:
        raise PolicyError(
            f"unknown key(s) {sorted(unknown)}", path=source, hint=f"allowed: {', '.join(sorted(TOP_KEYS))}"
        )
    kwargs: dict = {}
    for k in ("atol", "rtol"):
        if k in table:
            kwargs[k] = _number(table[k], k, source)
    if "max_adapter_change" in table:
        kwargs["max_adapter_change"] = _number(table["max_adapter_change"], "max_adapter_change", source)
    for k in ("allow_added", "allow_removed", "allow_trainable_change", "adapters_only"):
        if k in table:
            if not isinstance(table[k], bool):
                raise PolicyError(f"{k} must be true or false, got {table[k]!r}", path=source)
            kwargs[k] = table[k]
    if "nan_equal" in table:
        if not isinstance(table["nan_equal"], bool):
            raise PolicyError(f"nan_equal must be true or false, got {table['nan_equal']!r}", path=source)
        kwargs["equal_nan"] = table["nan_equal"]
    rename = table.get("rename", {})
    if not isinstance(rename, dict) or not all(isinstance(v, str) for v in rename.values()):
        raise PolicyError('rename must be a table of OLD = "NEW" strings', path=source)
    kwargs["rename"] = tuple(rename.items())
    fail_on = table.get("fail_on", [])
    from .schema import AUDIT_CHECKS as CHECKS

    if not isinstance(fail_on, list) or any(c not in CHECKS for c in fail_on):
        raise PolicyError(
            f"fail_on must be a list of audit checks, got {fail_on!r}", path=source, hint=f"checks: {', '.join(CHECKS)}"
        )
    kwargs["fail_on"] = tuple(fail_on)
    rules = []
    raw_rules = table.get("rules", [])
    if not isinstance(raw_rules, list):
        raise PolicyError("rules must be an array of tables ([[tool.kaudit.rules]])", path=source)
    for i, r in enumerate(raw_rules, 1):
        rules.append(_rule(r, i, source))
    return Policy(rules=tuple(rules), source=source, **kwargs)


def _rule(r, i: int, source: str | None) -> Rule:
    where = f"rules[{i}]"
    if not isinstance(r, dict):
        raise PolicyError(f"{where} must be a table", path=source)
    unknown = set(r) - RULE_KEYS
    if unknown:
        raise PolicyError(
            f"{where}: unknown key(s) {sorted(unknown)}", path=source, hint=f"allowed: {', '.join(sorted(RULE_KEYS))}"
        )
    pattern = r.get("path")
    if not isinstance(pattern, str) or not pattern:
        raise PolicyError(
            f"{where}: 'path' (a glob on variable paths) is required", path=source, hint='e.g. path = "backbone/**"'
        )
    try:
        paths.validate_pattern(pattern)
    except ValueError as exc:
        raise PolicyError(f"{where}: bad glob {pattern!r} ({exc})", path=source) from None
    kw: dict = {"pattern": pattern, "source": f"{source or 'policy'} {where}"}
    for k in ("atol", "rtol"):
        if k in r:
            kw[k] = _number(r[k], f"{where}.{k}", source)
    for k in ("frozen", "ignore"):
        if k in r:
            if not isinstance(r[k], bool):
                raise PolicyError(f"{where}.{k} must be true or false, got {r[k]!r}", path=source)
            kw[k] = r[k]
    if "trainable" in r:
        if not isinstance(r["trainable"], bool):
            raise PolicyError(f"{where}.trainable must be true or false, got {r['trainable']!r}", path=source)
        kw["trainable"] = r["trainable"]
    if "must_change" in r:
        v = r["must_change"]
        if v is True:
            kw["must_change"] = 0.0
        elif v is False:
            pass
        else:
            kw["must_change"] = _number(v, f"{where}.must_change", source)
    if "name" in r:
        kw["name"] = str(r["name"])
    if kw.get("frozen") and kw.get("must_change") is not None:
        raise PolicyError(f"{where}: a rule cannot be both frozen and must_change", path=source)
    return Rule(**kw)
