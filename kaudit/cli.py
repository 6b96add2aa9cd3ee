"""The command line: parse, call the library, render, pick the exit code.

``main(argv) -> int`` is the ONE place where errors become exit codes (docs/cli.md):
0 within policy, 1 policy violated, 2 could not compare, 130 interrupted. Heavy modules are
imported inside the commands, so ``kaudit --help`` stays fast.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import threading
import time
import traceback

from ._version import __version__
from .errors import EXIT_ERROR, EXIT_INTERRUPTED, KauditError, UsageError, printable

PROG = "kaudit"

DESCRIPTION = """\
Diff and audit Keras/TensorFlow model files, straight from the file (no model is built, no
model code runs). Variables are aligned by name path across nested models and formats.

exit codes: 0 within policy, 1 policy violated (values, structure or trainability),
            2 could not compare (usage, unreadable or unsupported input), 130 interrupted
"""

EPILOG = """\
examples:
  kaudit inspect fixtures/tutorial/k2_full.h5
  kaudit diff fixtures/tutorial/k2_full.h5 fixtures/tutorial/k3.keras
  kaudit diff before.h5 after.h5 --atol 1e-6 --tol 'head/**=1e-2' --junit report.xml
  kaudit montage model.h5 --layer conv1_conv --bgr -o conv1.png
  kaudit snapshot model.h5 -o baseline.json && kaudit diff baseline.json model.h5
  kaudit trend run/epoch_*.h5 --plot trend.png

run 'kaudit COMMAND --help' for the options of a command; docs: docs/cli.md
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors are KauditErrors: one line, exit 2
        import re

        hint = f"see '{self.prog} --help'"
        m = re.search(r"invalid choice: '(.*?)' \(choose from (.*)\)", message)
        if m:
            hint = _did_you_mean(m.group(1), re.findall(r"'(.*?)'", m.group(2))) + hint
        raise UsageError(f"{self.prog}: {message}", hint=hint)

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but arguments no parser knows are blamed on the command they were given
        to (``kaudit diff: unrecognized arguments: --atoll``), with a did-you-mean from its
        options, and the hint names that command's help."""
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            target = self
            for action in self._actions:
                if isinstance(action, argparse._SubParsersAction) and getattr(ns, action.dest, None):
                    target = action.choices[getattr(ns, action.dest)]
            options = [o for o in target._option_string_actions if o.startswith("--")]
            guess = "".join(_did_you_mean(x.split("=", 1)[0], options) for x in extras if x.startswith("-"))
            raise UsageError(
                f"{target.prog}: unrecognized arguments: {' '.join(extras)}", hint=f"{guess}see '{target.prog} --help'"
            )
        return ns


def _did_you_mean(word: str, choices) -> str:
    """``did you mean --atol? `` for a near miss among ``choices`` (difflib), else empty."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]}? " if close else ""


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=DESCRIPTION, epilog=EPILOG, formatter_class=_formatter)
    p.add_argument("--version", action="version", version=f"kaudit {__version__}")
    p.add_argument("--debug", action="store_true", help="show the traceback of errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    # inspect -----------------------------------------------------------------------------
    pi = sub.add_parser(
        "inspect",
        help="list the variables of a checkpoint with statistics and totals",
        description="List a checkpoint's variables the way Keras names them, with shape, dtype, "
        "trainable flag, params and min/max/mean/std, then Keras's totals.",
        epilog="examples:\n  kaudit inspect fixtures/tutorial/k2_full.h5\n"
        "  kaudit inspect model.keras --format json -o vars.json\n"
        "  kaudit inspect model.h5 --optimizer       # optimizer state too",
        formatter_class=_formatter,
    )
    pi.add_argument(
        "file",
        help="checkpoint: .h5/.hdf5, .keras, .weights.h5, .weights.json, TF checkpoint, "
        "SavedModel dir, or a kaudit snapshot",
    )
    pi.add_argument("--format", "-f", default="table", choices=("table", "csv", "json", "markdown", "html"))
    pi.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    pi.add_argument("--optimizer", action="store_true", help="include optimizer and metric state")
    pi.add_argument("--no-stats", action="store_true", help="skip min/max/mean/std (reads no values)")

    # diff --------------------------------------------------------------------------------
    pd_ = sub.add_parser(
        "diff",
        help="compare two checkpoints; exit 1 when the policy is violated",
        description="Align the variables of A and B by name path (then by structure), compare shapes, "
        "dtypes, trainability and values with streamed statistics, and gate on tolerances: "
        "an element passes when |a - b| <= atol + rtol * |b| (numpy's isclose, b from B).",
        epilog="examples:\n"
        "  kaudit diff fixtures/tutorial/k2_full.h5 fixtures/tutorial/k3.keras\n"
        "  kaudit diff a.h5 b.h5 --atol 1e-6 --rtol 1e-5\n"
        "  kaudit diff a.h5 b.h5 --tol '**/moving_*=1e-3,1e-2' --tol 'head/**=1'   # last match wins\n"
        "  kaudit diff a.h5 b.h5 --rename dense_3=dense_7 --ignore 'aux/**'\n"
        "  kaudit diff a.h5 b.h5 --format markdown --summary --junit kaudit.xml\n"
        "  kaudit diff a.h5 b.h5 --format html -o report.html --montage-dir montages/\n"
        "policy files: [tool.kaudit] in pyproject.toml or kaudit.toml (docs/policy.md)",
        formatter_class=_formatter,
    )
    pd_.add_argument("a", help="first checkpoint (the reference), or a kaudit snapshot")
    pd_.add_argument("b", help="second checkpoint (the candidate); a KerasHub .lora.h5: a with its adapters applied")
    g = pd_.add_argument_group("tolerance")
    g.add_argument("--atol", type=_float, default=None, metavar="X", help="absolute tolerance (default 0)")
    g.add_argument("--rtol", type=_float, default=None, metavar="Y", help="relative tolerance (default 0)")
    g.add_argument(
        "--tol",
        action="append",
        default=[],
        metavar="PATTERN=ATOL[,RTOL]",
        help="per-pattern tolerance, repeatable, last match wins",
    )
    g.add_argument("--nan-unequal", action="store_true", help="NaN never equals NaN (default: equal at the same place)")
    g = pd_.add_argument_group("alignment")
    g.add_argument(
        "--rename",
        action="append",
        default=[],
        metavar="OLD=NEW",
        help="map a path prefix (or glob) of A onto B, repeatable",
    )
    g.add_argument("--ignore", action="append", default=[], metavar="PATTERN", help="leave matching variables out")
    g.add_argument("--no-structural", action="store_true", help="pair by path only, never by structure")
    g.add_argument("--optimizer", action="store_true", help="compare optimizer and metric state too")
    g.add_argument(
        "--dequantize",
        action="store_true",
        help="two quantized weights: compare the float values Keras computes from them, not the "
        "stored integers and scales (a quantized weight against a float one always is)",
    )
    g = pd_.add_argument_group("policy")
    g.add_argument("--allow-added", action="store_true", help="variables only in B do not fail")
    g.add_argument("--allow-removed", action="store_true", help="variables only in A do not fail")
    g.add_argument("--allow-trainable-change", action="store_true", help="trainability changes do not fail")
    g.add_argument(
        "--adapters-only",
        action="store_true",
        help="LoRA: only weights that carry an adapter may change; every other weight must be bit-identical",
    )
    g.add_argument(
        "--max-adapter-change",
        type=_float,
        metavar="X",
        help="LoRA: an adapted weight may change by at most X relative to itself (‖b - a‖ / ‖a‖)",
    )
    g.add_argument(
        "--config",
        metavar="FILE",
        help="policy file (default: kaudit.toml or [tool.kaudit] in pyproject.toml, searched upward from here)",
    )
    g.add_argument("--no-config", action="store_true", help="ignore policy files")
    g = pd_.add_argument_group("output")
    g.add_argument("--format", "-f", default="table", choices=("table", "markdown", "csv", "json", "junit", "html"))
    g.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE")
    g.add_argument("--all", action="store_true", help="list identical pairs too")
    g.add_argument(
        "--sort",
        choices=("change", "status", "path", "model"),
        default=None,
        help="row order: change (failures first, then the largest relative change; the default "
        "of table, markdown and html), status, path, or model (the file's order; the default "
        "of csv, json and junit)",
    )
    g.add_argument(
        "--top", type=_count, default=None, metavar="N", help="show the first N rows (0: all; default all, markdown 50)"
    )
    g.add_argument(
        "--wide", action="store_true", help="every table column at full width (default: fit the terminal, $COLUMNS)"
    )
    g.add_argument(
        "--plot",
        metavar="PNG",
        help="also draw where the model moved: one bar per layer, "
        "its relative change on a log scale, coloured by verdict",
    )
    g.add_argument("-q", "--quiet", action="store_true", help="print nothing; the exit code says it")
    g.add_argument("--junit", metavar="FILE", help="also write JUnit XML (one test case per variable)")
    g.add_argument(
        "--summary", action="store_true", help="append the Markdown report to $GITHUB_STEP_SUMMARY when it is set"
    )
    g.add_argument("--montage-dir", metavar="DIR", help="write an A | B | difference PNG per changed conv kernel")
    g.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress on stderr (default: on a terminal, for large files)",
    )

    # trend -------------------------------------------------------------------------------
    pt = sub.add_parser(
        "trend",
        help="a training run as one picture: every checkpoint against the previous one and the first",
        description="Compare each checkpoint of a run with the previous one and with the first (as 'kaudit diff' "
        "aligns and measures them), and show the relative change ||b - a|| / max(||a||, ||b||) per "
        "layer and checkpoint, with each variable's norm. With a policy (a policy file, or --atol/"
        "--rtol/--tol) every step is gated: exit 1 when a checkpoint is outside it against the "
        "previous one or the first (a frozen layer must stay identical through the whole run); "
        "without one the trend only measures (exit 0).",
        epilog="examples:\n"
        "  kaudit trend run/epoch_*.h5                       # ordered by the numbers in the names\n"
        "  kaudit trend checkpoints/ --plot trend.png\n"
        "  kaudit trend e1.h5 e2.h5 e3.h5 --order given --format html -o trend.html\n"
        "  kaudit trend run/*.h5 --config kaudit.toml       # gate: frozen layers stay identical",
        formatter_class=_formatter,
    )
    pt.add_argument(
        "checkpoints",
        nargs="+",
        metavar="CKPT",
        help="checkpoints of one run: files, a glob, or one directory of checkpoints",
    )
    pt.add_argument(
        "--order",
        choices=("natural", "given"),
        default="natural",
        help="natural: by the numbers in the names (epoch 51 before 110; default); given: as listed",
    )
    pt.add_argument(
        "--by",
        choices=("layer", "variable"),
        default="layer",
        help="one row per layer (the largest change of its variables; default) or per variable",
    )
    g = pt.add_argument_group("policy")
    g.add_argument("--atol", type=_float, default=None, metavar="X", help="absolute tolerance: gate every step")
    g.add_argument("--rtol", type=_float, default=None, metavar="Y", help="relative tolerance: gate every step")
    g.add_argument(
        "--tol",
        action="append",
        default=[],
        metavar="PATTERN=ATOL[,RTOL]",
        help="per-pattern tolerance, repeatable, last match wins",
    )
    g.add_argument("--ignore", action="append", default=[], metavar="PATTERN", help="leave matching variables out")
    g.add_argument(
        "--config",
        metavar="FILE",
        help="policy file (default: kaudit.toml or [tool.kaudit] in pyproject.toml, searched upward from here)",
    )
    g.add_argument("--no-config", action="store_true", help="ignore policy files")
    g = pt.add_argument_group("output")
    g.add_argument("--format", "-f", default="table", choices=("table", "csv", "json", "html"))
    g.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE")
    g.add_argument("--plot", metavar="PNG", help="also draw the heatmap: layers down, checkpoints across")
    g.add_argument("--wide", action="store_true", help="every column at full width (default: fit the terminal)")
    g.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show each checkpoint as it is read (default: on a terminal)",
    )

    # montage -----------------------------------------------------------------------------
    pm = sub.add_parser(
        "montage",
        help="draw conv kernels as tiles (one file) or A | B | difference (two files)",
        description="Draw a conv kernel the way the tutorial does: min-max scale to 0..255, one RGB tile per "
        "filter when it has 3 input channels, else grey h x w tiles, skimage.util.montage, "
        "nearest-neighbour upscaling. With two files: A | B | difference side by side.",
        epilog="examples:\n  kaudit montage fixtures/convnet/k2_full.h5 -o conv1.png\n"
        "  kaudit montage resnet50.h5 --layer conv1_conv --bgr -o conv1.png\n"
        "  kaudit montage before.h5 after.h5 --layer 'conv*' --sort-by-change -o delta.png",
        formatter_class=_formatter,
    )
    pm.add_argument("a", help="checkpoint")
    pm.add_argument("b", nargs="?", help="second checkpoint: draw A | B | difference")
    pm.add_argument("--layer", metavar="PATH", help="layer or variable path, or a glob (default: the first conv layer)")
    pm.add_argument("-o", "--output", metavar="FILE", required=True, help="PNG file to write")
    pm.add_argument("--bgr", action="store_true", help="flip channel order (caffe-trained weights, e.g. ResNet50)")
    pm.add_argument("--grey", action="store_true", help="grey tiles per (input, output) channel even for RGB kernels")
    pm.add_argument("--scale", type=int, default=8, metavar="N", help="nearest-neighbour upscaling (default 8)")
    pm.add_argument("--sort-by-change", action="store_true", help="order tiles by how much each filter moved")
    pm.add_argument(
        "--no-gaps",
        action="store_true",
        help="no gaps between the tiles of a one-file montage (the tutorial's exact picture)",
    )

    # snapshot ----------------------------------------------------------------------------
    ps = sub.add_parser(
        "snapshot",
        help="write a baseline (hash + statistics per variable) to diff against later",
        description="Record per variable the path, shape, dtype, trainable flag, a sha256 of the values and "
        "min/max/mean/std/L2: a few KB that can live in git instead of the checkpoint. A diff "
        "against it proves identity (sha256) and difference, never closeness: a variable whose "
        "hash differs fails. With --values the values are stored too (zlib, at most 64 MiB in all) "
        "and the snapshot compares element by element, like the file.",
        epilog="examples:\n  kaudit snapshot model.h5 -o baseline.json\n  kaudit diff baseline.json model.h5\n"
        "  kaudit snapshot model.h5 --values -o baseline.json   # tolerances work against it",
        formatter_class=_formatter,
    )
    ps.add_argument("file")
    ps.add_argument("-o", "--output", metavar="FILE", required=True, help="JSON file to write ('-' for stdout)")
    ps.add_argument("--optimizer", action="store_true", help="include optimizer and metric state")
    ps.add_argument(
        "--values",
        action="store_true",
        help="store the values too (compressed), so closeness within a tolerance can be proven",
    )

    # audit -------------------------------------------------------------------------------
    pa = sub.add_parser(
        "audit",
        help="health checks of one checkpoint (NaN/Inf, dead filters, BN variance, ...)",
        description="Check one checkpoint for NaN/Inf, all-zero conv filters or Dense units, BatchNormalization "
        "moving_variance <= 0, extreme magnitudes, mixed dtypes, optimizer state and unknown "
        "trainability. Exit 1 when a finding of severity 'error' is present (or --strict: 'warning').",
        epilog="examples:\n  kaudit audit model.h5\n  kaudit audit model.keras --strict --format json",
        formatter_class=_formatter,
    )
    pa.add_argument("file")
    pa.add_argument("--format", "-f", default="table", choices=("table", "markdown", "json"))
    pa.add_argument("-o", "--output", metavar="FILE")
    pa.add_argument("--strict", action="store_true", help="warnings fail too")
    pa.add_argument(
        "--max-abs", type=_float, default=1e4, metavar="X", help="flag values with |x| above X as extreme (default 1e4)"
    )
    pa.add_argument("--config", metavar="FILE", help="policy file whose fail_on lists checks that fail")
    pa.add_argument("--no-config", action="store_true", help="ignore policy files")
    return p


def _count(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return v


def _width(args) -> int | None:
    """The width a table must fit: None with --wide, else the terminal's ($COLUMNS first; 120
    when the output is no terminal), never below 40."""
    import shutil

    if getattr(args, "wide", False):
        return None
    return max(40, shutil.get_terminal_size((120, 24)).columns)


def _wrap(args) -> bool:
    """Whether prose is wrapped to the table's width: on a terminal (or with $COLUMNS set); in a
    CI log or a file each message stays on one line."""
    import sys

    return not getattr(args, "wide", False) and (
        "COLUMNS" in os.environ or (not getattr(args, "output", None) and sys.stdout.isatty())
    )


def _float(text: str) -> float:
    import math

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0: {text!r}")
    return v


# -- commands ------------------------------------------------------------------------------------


def _emit(text: str | bytes, output: str | None) -> None:
    from ._io import write_atomic

    write_atomic(output or "-", text)


def cmd_inspect(args) -> int:
    from ._io import Progress
    from .inspection import inspect

    progress = Progress("kaudit inspect")
    try:
        res = inspect(args.file, optimizer=args.optimizer, stats=not args.no_stats, progress=progress)
    finally:
        progress.close()
    _emit(res.render(args.format), args.output)
    return 0


def _policy(args):
    """The policy, resolved as the Python API resolves it (``kaudit.policy.resolve``): --config
    FILE, --no-config (none), else discovered from the working directory. Reports name it."""
    from .policy import resolve

    if args.no_config and args.config:
        raise UsageError("--config and --no-config exclude each other")
    return resolve(False if args.no_config else args.config)


def cmd_diff(args) -> int:
    from ._io import Progress, write_atomic
    from .compare import diff
    from .policy import parse_rename

    if args.quiet and (args.output or args.format != "table"):
        raise UsageError("-q/--quiet prints nothing; it cannot go with --format or -o")
    policy = _policy(args)
    progress = Progress("kaudit diff", enabled=args.progress)
    progress.note(f"reading {args.a} and {args.b}")
    started = time.monotonic()
    result = None
    try:
        result = diff(
            args.a,
            args.b,
            atol=args.atol,
            rtol=args.rtol,
            tol=args.tol,
            equal_nan=False if args.nan_unequal else None,
            rename=[parse_rename(r) for r in args.rename],
            ignore=args.ignore,
            structural=not args.no_structural,
            optimizer=args.optimizer,
            allow_added=args.allow_added,
            allow_removed=args.allow_removed,
            allow_trainable_change=args.allow_trainable_change,
            policy=policy,
            progress=progress,
            pictures=_pictures(args),
            dequantize=args.dequantize,
            adapters_only=args.adapters_only,
            max_adapter_change=args.max_adapter_change,
        )
    finally:
        progress.close(
            None
            if result is None
            else f"compared {result.summary['pairs']} pairs in {time.monotonic() - started:.2f} s"
        )
    if args.montage_dir:
        from .montages import write_diff_montages

        result = result.with_montages(write_diff_montages(result, args.montage_dir))
    # render everything first, then write: a failure leaves no partial set of outputs
    outputs: list[tuple[str, str | bytes]] = []
    if args.junit:
        outputs.append((args.junit, result.render("junit")))
    if args.plot:
        from .report.drift import drift_png

        outputs.append((args.plot, drift_png(result)))
    summary_path = os.environ.get("GITHUB_STEP_SUMMARY") if args.summary else None
    if not args.quiet:
        sort = args.sort or ("change" if args.format in ("table", "markdown", "html") else "model")
        outputs.append(
            (
                args.output or "-",
                result.render(
                    args.format, all_rows=args.all, sort=sort, top=args.top, width=_width(args), wrap=_wrap(args)
                ),
            )
        )
    for path, text in outputs:
        write_atomic(path, text)
    if summary_path:
        with open(summary_path, "a", encoding="utf-8") as fh:
            fh.write(result.render("markdown"))
    if args.output and not args.quiet:  # the report went to a file: a CI log still shows the outcome
        from .report._fmt import verdict_summary

        print(verdict_summary(result), file=sys.stderr)
    return result.exit_code


def cmd_trend(args) -> int:
    from ._io import write_atomic
    from .policy import Policy
    from .trend import trend

    policy = _policy(args)
    show = sys.stderr.isatty() if args.progress is None else args.progress

    def opening(i: int, file: str) -> None:
        if show:
            print(f"kaudit trend: [{i + 1}] {file}", file=sys.stderr, flush=True)

    result = trend(
        args.checkpoints,
        order=args.order,
        policy=policy,
        atol=args.atol,
        rtol=args.rtol,
        tol=args.tol,
        ignore=args.ignore,
        gate=(policy != Policy() or args.atol is not None or args.rtol is not None or bool(args.tol)),
        on_checkpoint=opening,
    )
    outputs: list[tuple[str, str | bytes]] = []
    if args.plot:
        from .report.trend import trend_png

        outputs.append((args.plot, trend_png(result, by=args.by)))
    outputs.append((args.output or "-", result.render(args.format, by=args.by, width=_width(args), wrap=_wrap(args))))
    for path, data in outputs:
        write_atomic(path, data)
    if args.output:
        from .report.trend import summary_line

        print(summary_line(result), file=sys.stderr)
    return result.exit_code


def _pictures(args) -> int | None:
    """How many montages ``diff`` draws: all for --montage-dir, the report's share for HTML."""
    if args.montage_dir:
        return None
    if args.format == "html" and not args.quiet:
        from .report.html import MAX_MONTAGES

        return MAX_MONTAGES
    return 0


def cmd_montage(args) -> int:
    from .montages import montage_png

    png = montage_png(
        args.a,
        args.b,
        layer=args.layer,
        bgr=args.bgr,
        grey=args.grey,
        scale=args.scale,
        sort_by_change=args.sort_by_change,
        gaps=not args.no_gaps,
    )
    _emit(png, args.output)
    if args.output != "-":
        print(f"wrote {printable(args.output)}", file=sys.stderr)
    return 0


def cmd_snapshot(args) -> int:
    import json

    from .baseline import snapshot
    from .report.json import clean

    doc = snapshot(args.file, optimizer=args.optimizer, values=args.values)
    _emit(json.dumps(clean(doc), indent=1, allow_nan=False) + "\n", args.output)
    return 0


def cmd_audit(args) -> int:
    from .health import audit

    res = audit(args.file, max_abs=args.max_abs, policy=_policy(args), strict=args.strict)
    _emit(res.render(args.format), args.output)
    return res.exit_code


COMMANDS = {
    "inspect": cmd_inspect,
    "diff": cmd_diff,
    "trend": cmd_trend,
    "montage": cmd_montage,
    "snapshot": cmd_snapshot,
    "audit": cmd_audit,
}


def _on_sigint(signum, frame):
    """The first Ctrl-C stops the work: KeyboardInterrupt unwinds through the clean-up code
    (temporary files, inflated archive members, open files). Later ones are ignored, so that a
    second Ctrl-C cannot cut that clean-up short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run kaudit; return the exit code. Never raises (except SystemExit from --help/--version)."""
    previous = None
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        return _main(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("KAUDIT_DEBUG") == "1"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help(sys.stderr)
            return EXIT_ERROR
        return COMMANDS[args.command](args)
    except KauditError as exc:
        if debug:
            traceback.print_exc()
        print(f"kaudit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("kaudit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        except OSError:
            pass
        return EXIT_ERROR
    except MemoryError:
        print("kaudit: error: out of memory", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a bug: still one line and exit 2, traceback with --debug
        if debug:
            traceback.print_exc()
        print(
            f"kaudit: internal error: {type(exc).__name__}: {printable(' '.join(str(exc).split())[:300])} "
            "(this is a bug; run with --debug and report it)",
            file=sys.stderr,
        )
        return EXIT_ERROR


def _work() -> int:
    # A short-lived process that builds tens of thousands of small objects per model: the cycle
    # collector's default (a pass every 700 allocations, full passes over every module's objects)
    # costs ~3 us per variable. Objects alive now stay out of its passes; it runs every 200,000
    # allocations (mypy's setting), so reference cycles are still collected and memory stays bounded.
    gc.freeze()
    gc.set_threshold(200_000, 30, 30)
    try:
        return main()
    except KeyboardInterrupt:  # Ctrl-C between main() returning and here
        print("kaudit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def run() -> None:
    """The console script and ``python -m kaudit``: ``main()`` in a worker process under the stall
    watchdog (kaudit._watchdog), so that not even a looping HDF5 library can hang a CI job."""
    from ._watchdog import supervise

    code = supervise(_work)
    # the work is done and its outputs written: a Ctrl-C during the interpreter's exit changes nothing
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)
