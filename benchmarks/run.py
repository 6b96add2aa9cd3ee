"""Benchmark kaudit side by side with h5diff, the Keras way and a raw h5py read.

    python benchmarks/make_data.py && python benchmarks/run.py [--reps 5] [--baseline DIR] [--quick]
    python benchmarks/make_data.py --only scale && python benchmarks/run.py --scale [--reps 3]

Every contender runs as a child process, the contenders of one case alternately, ``--reps``
times; the table shows the median wall time, the median CPU time (user + sys of the child) and
the largest peak RSS (``wait4`` rusage of that child). ``--baseline DIR`` adds ``kaudit
(baseline)``: the ``kaudit`` package found in DIR (e.g. a ``git worktree`` of an older commit),
run with the same interpreter. Writes Markdown to stdout and benchmarks/results/latest.md.

The machine may be shared: the CPU column is the steadier figure when the load average (printed
with the machine) is above the core count.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(HERE, "data")
RESULTS = os.path.join(HERE, "results")
PY = sys.executable

KERAS_WAY = r"""
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import tf_keras
a = tf_keras.models.load_model(sys.argv[1], compile=False)
b = tf_keras.models.load_model(sys.argv[2], compile=False)
wa, wb = a.get_weights(), b.get_weights()
same = len(wa) == len(wb) and all(x.shape == y.shape and np.allclose(x, y, rtol=0.0, atol=1e-6) for x, y in zip(wa, wb))
print("same" if same else "different")
"""

RAW_READ = r"""
import sys, h5py
total = 0
for path in sys.argv[1:]:
    with h5py.File(path, "r") as f:
        found = []
        f.visititems(lambda name, obj: found.append(obj) if isinstance(obj, h5py.Dataset) else None)
        for ds in found:
            total += ds[()].nbytes
print(total)
"""


def run_child(argv: list[str], env: dict | None = None, timeout: float = 900) -> tuple[float, float, float, int]:
    """(wall s, cpu s, peak RSS MiB, exit code) of one child process."""
    t0 = time.perf_counter()
    # cwd: not the repository, so that a --baseline PYTHONPATH is not shadowed by ./kaudit
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=HERE)
    deadline = t0 + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, ru = os.wait4(proc.pid, 0)
            break
        time.sleep(0.002)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode not in (0, 1):
        sys.stderr.write(f"warning: {' '.join(argv[:4])}... exited {proc.returncode}: {err[-400:]}\n")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, proc.returncode


class Case:
    def __init__(self, name: str, contenders: dict[str, tuple[list[str], dict | None]]):
        self.name = name
        self.contenders = contenders
        self.samples: dict[str, list[tuple[float, float, float, int]]] = {k: [] for k in contenders}

    def run(self, reps: int) -> None:
        for _ in range(reps):  # alternate: one of each per round
            for label, (argv, env) in self.contenders.items():
                self.samples[label].append(run_child(argv, env))

    def wall(self, label: str) -> float:
        return statistics.median(s[0] for s in self.samples[label])

    def cpu(self, label: str) -> float:
        return statistics.median(s[1] for s in self.samples[label])

    def rss(self, label: str) -> float:
        return max(s[2] for s in self.samples[label])


def kaudit_cmd(args: list[str], baseline: str | None = None) -> tuple[list[str], dict | None]:
    """``python -m kaudit`` of this checkout (ROOT), or of ``baseline``: never whichever kaudit the
    interpreter has installed (an editable install of another worktree would be measured instead)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = baseline or ROOT
    return [PY, "-m", "kaudit", *args], env


def data(name: str) -> str:
    return os.path.join(DATA, name)


def have(*names: str) -> bool:
    return all(os.path.exists(data(n)) for n in names)


def size_mib(*names: str) -> float:
    def size(p: str) -> int:
        return (
            sum(os.path.getsize(os.path.join(p, f)) for f in os.listdir(p)) if os.path.isdir(p) else os.path.getsize(p)
        )

    return sum(size(data(n)) for n in names) / 2**20


def machine() -> list[str]:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        ram = float("nan")
    vers = subprocess.run(
        [
            PY,
            "-c",
            "import numpy, h5py, kaudit; print(numpy.__version__, h5py.__version__, "
            "h5py.version.hdf5_version, kaudit.__version__)",
        ],
        env={**os.environ, "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
    ).stdout.split()
    tfk = (
        subprocess.run(
            [PY, "-c", "import importlib.metadata as m; print(m.version('tf-keras'))"], capture_output=True, text=True
        ).stdout.strip()
        or "n/a"
    )
    h5d = (
        subprocess.run(["h5diff", "--version"], capture_output=True, text=True).stdout.strip()
        if shutil.which("h5diff")
        else "not installed"
    )
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores; RAM {ram:.1f} GiB; {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}, numpy {vers[0] if vers else '?'}, h5py {vers[1] if len(vers) > 1 else '?'} "
        f"(HDF5 {vers[2] if len(vers) > 2 else '?'}), kaudit {vers[3] if len(vers) > 3 else '?'}, tf-keras {tfk}, {h5d}",
        f"- load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
    ]


def fmt_t(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def table(case: Case, ref: str | None = None) -> list[str]:
    lines = [
        f"### {case.name}",
        "",
        "| contender | wall s (median) | CPU s (median) | peak RSS MiB | runs |" + (f" × {ref} wall |" if ref else ""),
        "|---|---:|---:|---:|---:|" + ("---:|" if ref else ""),
    ]
    for label in case.contenders:
        row = f"| {label} | {fmt_t(case.wall(label))} | {fmt_t(case.cpu(label))} | {case.rss(label):.0f} | {len(case.samples[label])} |"
        if ref:
            row += f" {case.wall(label) / case.wall(ref):.2f} |"
        lines.append(row)
    return lines + [""]


def tf_imported(args: list[str]) -> bool:
    out = subprocess.run([PY, "-X", "importtime", "-m", "kaudit", *args], capture_output=True, text=True)
    return any(
        " tensorflow" in line or "| tensorflow" in line or " tf_keras" in line for line in out.stderr.splitlines()
    )


SCALE_PAIRS = (
    ("identical", "a2", "every variable bit-identical (b a byte-for-byte copy of a)"),
    ("half changed", "half", "every other layer changed, the rest bit-identical"),
    ("all changed", "all", "every variable changed"),
)


def scale_files(name: str) -> list[str]:
    """The index and shards of one sharded checkpoint directory."""
    d = data(name)
    return [os.path.join(d, f) for f in sorted(os.listdir(d))]


def kernel_status() -> str:
    """Which statistics path this checkout's kaudit takes for large changed pairs."""
    _argv, env = kaudit_cmd([])
    code = "from kaudit import kernels; print(kernels.status())"
    return subprocess.run([PY, "-c", code], env=env, capture_output=True, text=True).stdout.strip() or "?"


def run_scale(args, base: str | None) -> int:
    """The ~4 GB sharded pairs (make_data.py --only scale): kaudit diff against `cat` of the same
    files to /dev/null, the page-cache floor, in the same runs. GB/s are of pair bytes (both files)."""
    kinds = [k for k in ("bf16", "int8") if have(*(f"scale_{k}_{v}" for v in ("a", "a2", "half", "all")))]
    if not kinds:
        print("no scale data: run python benchmarks/make_data.py --only scale first", file=sys.stderr)
        return 2
    out: list[str] = [
        "# kaudit benchmarks: scale (Keras 3 sharded pairs of ~4 GB)",
        "",
        *machine(),
        f"- repetitions per contender: {args.reps}, alternating; one untimed `cat` of the pair first (page cache)",
        f"- statistics of changed pairs: {kernel_status()}",
        "",
    ]
    verdicts: list[tuple[str, str, bool]] = []
    t_start = time.time()
    kd = "kaudit diff (full statistics)"
    floor = "cat a b > /dev/null (floor)"
    for kind in kinds:
        rates: dict[str, float] = {}
        for label, other, what in SCALE_PAIRS:
            a, b = f"scale_{kind}_a", f"scale_{kind}_{other}"
            files = scale_files(a) + scale_files(b)
            subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=True)  # into the page cache
            gb = sum(os.path.getsize(f) for f in files) / 1e9
            kargs = [
                "diff",
                "-q",
                os.path.join(data(a), "model.weights.json"),
                os.path.join(data(b), "model.weights.json"),
            ]
            cont = {kd: kaudit_cmd(kargs)}
            if args.numpy_path:  # the same checkout without the compiled kernels (kaudit/kernels.py)
                argv, env = kaudit_cmd(kargs)
                cont["kaudit, KAUDIT_KERNELS=numpy"] = (argv, {**(env or {}), "KAUDIT_KERNELS": "numpy"})
            if base:
                cont[f"kaudit from {base}"] = kaudit_cmd(kargs, base)
            cont[floor] = (["sh", "-c", 'cat "$@" > /dev/null', "cat", *files], None)
            load0 = os.getloadavg()[0]
            c = Case(f"{kind}, {label}: {what}; {gb:.2f} GB pair", cont)
            c.run(args.reps)
            load1 = os.getloadavg()[0]
            out += table(c, floor)[:-1]
            lines = []
            for lab in cont:
                lines.append(
                    f"- {lab}: {gb / c.wall(lab):.2f} GB/s wall, {gb / c.cpu(lab):.2f} GB/s per CPU second, "
                    f"CPU/wall {c.cpu(lab) / c.wall(lab):.2f}"
                )
            out += ["", *lines, f"- load average (1 min) {load0:.2f} before, {load1:.2f} after", ""]
            rates[label] = gb / c.wall(kd)
            rss = c.rss(kd)
            verdicts.append((f"{kind} {label}: peak RSS < 300 MiB", f"{rss:.0f} MiB", rss < 300))
            busy = c.cpu(kd) / c.wall(kd)
            verdicts.append((f"{kind} {label}: both cores busy (CPU/wall ≥ 1.6)", f"{busy:.2f}", busy >= 1.6))
        verdicts.append((f"{kind}: identical pair ≥ 4 GB/s", f"{rates['identical']:.2f} GB/s", rates["identical"] >= 4))
        verdicts.append(
            (f"{kind}: changed pair ≥ 1 GB/s", f"{rates['all changed']:.2f} GB/s", rates["all changed"] >= 1)
        )
    out += ["## Targets", "", "| target | measured | met |", "|---|---:|:---:|"]
    out += [f"| {t} | {m} | {'yes' if ok else '**no**'} |" for t, m, ok in verdicts]
    out += [
        "",
        f"- load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"benchmark took {time.time() - t_start:.0f} s",
        "",
    ]
    text = "\n".join(out)
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as fh:
        fh.write(text)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5, help="runs of each contender per case (>= 3)")
    ap.add_argument("--baseline", metavar="DIR", help="also run the kaudit package found in DIR")
    ap.add_argument("--quick", action="store_true", help="skip the Keras way and the 4x set")
    ap.add_argument("--scale", action="store_true", help="only the ~4 GB sharded pairs (make_data.py --only scale)")
    ap.add_argument(
        "--numpy-path", action="store_true", help="with --scale: also run this checkout with KAUDIT_KERNELS=numpy"
    )
    ap.add_argument("-o", "--output", default=None, help="latest.md (scale.md with --scale) in benchmarks/results/")
    args = ap.parse_args()
    if args.reps < 3:
        ap.error("--reps must be >= 3")
    if args.output is None:
        args.output = os.path.join(RESULTS, "scale.md" if args.scale else "latest.md")
    if args.scale:
        return run_scale(args, args.baseline)
    if not have("big_a.h5", "big_b.h5"):
        print("no benchmark data: run python benchmarks/make_data.py first", file=sys.stderr)
        return 2
    out: list[str] = [
        "# kaudit benchmarks",
        "",
        *machine(),
        f"- repetitions per contender: {args.reps}, alternating",
        "",
    ]
    verdicts: list[tuple[str, str, bool]] = []
    base = args.baseline

    def with_base(d: dict, kargs: list[str]) -> dict:
        if base:
            d["kaudit (baseline)"] = kaudit_cmd(kargs, base)
        return d

    def peers(cont: dict, a: str, b: str) -> dict:
        """h5diff (when installed) and the raw h5py read of every dataset (the floor) on a and b."""
        if shutil.which("h5diff"):
            cont["h5diff -d 1e-6"] = (["h5diff", "-d", "1e-6", data(a), data(b)], None)
        cont["raw h5py read (floor)"] = ([PY, "-c", RAW_READ, data(a), data(b)], None)
        return cont

    t_start = time.time()
    # 1. the 0.5 GB legacy .h5 pair -----------------------------------------------------------
    big = ["big_a.h5", "big_b.h5"]
    k_big = ["diff", "-q", data(big[0]), data(big[1])]
    cont = {"kaudit diff (full statistics)": kaudit_cmd(k_big)}
    with_base(cont, k_big)
    if not args.quick:
        cont["Keras way (tf_keras load_model + np.allclose)"] = (
            [PY, "-c", KERAS_WAY, data(big[0]), data(big[1])],
            None,
        )
    peers(cont, *big)
    c_big = Case(f"Legacy Keras 2 .h5 pair, {size_mib(*big):.0f} MiB in all", cont)
    c_big.run(args.reps)
    out += table(c_big, "kaudit diff (full statistics)")
    kd = c_big.wall("kaudit diff (full statistics)")
    if "h5diff -d 1e-6" in cont:
        r = kd / c_big.wall("h5diff -d 1e-6")
        verdicts.append(("kaudit diff ≤ 0.5× h5diff wall (0.5 GB pair)", f"{r:.2f}×", r <= 0.5))
        rc = c_big.cpu("kaudit diff (full statistics)") / c_big.cpu("h5diff -d 1e-6")
        verdicts.append(("(same, CPU time)", f"{rc:.2f}×", rc <= 0.5))
    if not args.quick:
        r = c_big.wall("Keras way (tf_keras load_model + np.allclose)") / kd
        verdicts.append(("kaudit diff ≥ 20× faster than the Keras way", f"{r:.1f}×", r >= 20))
    rss_big = c_big.rss("kaudit diff (full statistics)")
    verdicts.append(("peak RSS ≤ 200 MiB (0.5 GB pair)", f"{rss_big:.0f} MiB", rss_big <= 200))

    # 2. the same pair as Keras 3 files ---------------------------------------------------------
    for ext, label in (
        (".keras", "Keras 3 .keras archives (stored, read in place)"),
        (".weights.h5", "Keras 3 .weights.h5"),
    ):
        names = [f"big_a{ext}", f"big_b{ext}"]
        if not have(*names):
            continue
        kargs = ["diff", "-q", data(names[0]), data(names[1])]
        cont = with_base({"kaudit diff (full statistics)": kaudit_cmd(kargs)}, kargs)
        if ext == ".weights.h5":
            peers(cont, *names)
        c = Case(f"{label}, {size_mib(*names):.0f} MiB in all", cont)
        c.run(args.reps)
        out += table(c, "kaudit diff (full statistics)")

    # 2b. the same pair as TF2 checkpoints (tensor bundles), read natively ---------------------------
    tf_pair = ["big_a_tfckpt", "big_b_tfckpt"]
    if have(*tf_pair):
        kt = ["diff", "-q", data(tf_pair[0]), data(tf_pair[1])]
        native, h5 = "kaudit diff, TF2 checkpoints (native)", "kaudit diff, the .h5 pair (same weights)"
        cont = with_base({native: kaudit_cmd(kt), h5: kaudit_cmd(k_big)}, kt)
        if not args.quick:
            cont["kaudit diff, TF2 checkpoints (KAUDIT_TF_READER=tensorflow)"] = (
                kaudit_cmd(kt)[0],
                {**os.environ, "KAUDIT_TF_READER": "tensorflow"},
            )
        ct = Case(
            f"TF2 checkpoint pair (tf_keras save_weights), {size_mib(*tf_pair):.0f} MiB in all, against the "
            "same weights as .h5",
            cont,
        )
        ct.run(args.reps)
        out += table(ct, h5)
        r = ct.wall(native) / ct.wall(h5)
        verdicts.append(("TF2 checkpoint pair ≤ 1.2× the .h5 pair (0.5 GB)", f"{r:.2f}×", r <= 1.2))
        rc = ct.cpu(native) / ct.cpu(h5)
        verdicts.append(("(same, CPU time)", f"{rc:.2f}×", rc <= 1.2))
        rss_tf = ct.rss(native)
        verdicts.append(("peak RSS ≤ 200 MiB (TF2 checkpoint pair)", f"{rss_tf:.0f} MiB", rss_tf <= 200))
        imported = tf_imported(kt)
        verdicts.append(
            ("no TensorFlow import diffing TF2 checkpoints", "imported" if imported else "none", not imported)
        )
    phasenet = [
        os.path.join(
            ROOT, "..", "shared", "real-models", "phasenet", f"phasenet_190703_epoch{e}_tfckpt", f"model_{e}.ckpt"
        )
        for e in (50, 95)
    ]
    if all(os.path.isfile(p + ".index") for p in phasenet):
        kp = ["diff", "-q", *phasenet]
        cont = with_base({"kaudit diff, PhaseNet epochs 50/95 (native)": kaudit_cmd(kp)}, kp)
        if not args.quick:
            cont["kaudit diff, PhaseNet (KAUDIT_TF_READER=tensorflow)"] = (
                kaudit_cmd(kp)[0],
                {**os.environ, "KAUDIT_TF_READER": "tensorflow"},
            )
        cp = Case("Real TF1 checkpoints in the V2 format: PhaseNet, two epochs (3 MiB each, 210 tensors)", cont)
        cp.run(args.reps)
        out += table(cp)
        w = cp.wall("kaudit diff, PhaseNet epochs 50/95 (native)")
        verdicts.append(("PhaseNet epoch pair ≤ 0.5 s", f"{w:.3f} s", w <= 0.5))
        imported = tf_imported(kp)
        verdicts.append(("(same, no TensorFlow import)", "imported" if imported else "none", not imported))

    # 3. scaling: 4x the bytes ------------------------------------------------------------------
    if not args.quick and have("x4_a.h5", "x4_b.h5"):
        x4 = ["x4_a.h5", "x4_b.h5"]
        kargs = ["diff", "-q", data(x4[0]), data(x4[1])]
        cont = peers(with_base({"kaudit diff (full statistics)": kaudit_cmd(kargs)}, kargs), *x4)
        c4 = Case(f"4× variant (width ×2), {size_mib(*x4):.0f} MiB in all", cont)
        c4.run(args.reps)
        out += table(c4, "kaudit diff (full statistics)")
        ratio = c4.wall("kaudit diff (full statistics)") / kd
        bytes_ratio = size_mib(*x4) / size_mib(*big)
        verdicts.append((f"scaling: {bytes_ratio:.1f}× the bytes ≤ 4.4× the time", f"{ratio:.2f}×", ratio <= 4.4))
        rc = c4.cpu("kaudit diff (full statistics)") / c_big.cpu("kaudit diff (full statistics)")
        verdicts.append(("(same, CPU time)", f"{rc:.2f}×", rc <= 4.4))
        rss4 = c4.rss("kaudit diff (full statistics)")
        verdicts.append(
            (
                "peak RSS independent of the largest variable (512 MiB kernels)",
                f"{rss4:.0f} vs {rss_big:.0f} MiB",
                rss4 <= max(200.0, rss_big * 1.15),
            )
        )

    # 4. per-variable overhead ------------------------------------------------------------------
    # b: a's fine-tuned copy (the same metadata: a twin); c: the same size, other metadata
    for ext, title, tag in (
        (".h5", "Many small variables (2,000 Dense(8) layers) against a 1-layer model", ""),
        (".keras", "The same many small variables as Keras 3 .keras archives", " (.keras)"),
    ):
        if not have(f"small_a{ext}", f"small_b{ext}", f"tiny_a{ext}", f"tiny_b{ext}"):
            continue
        pairs = {"": "b"}
        if have(f"small_c{ext}", f"tiny_c{ext}"):
            pairs[", b not a twin"] = "c"
        cont = {}
        for label, other in pairs.items():
            ks = ["diff", "-q", data(f"small_a{ext}"), data(f"small_{other}{ext}")]
            kt = ["diff", "-q", data(f"tiny_a{ext}"), data(f"tiny_{other}{ext}")]
            cont[f"kaudit diff, 4,000 variables{label}{tag}"] = kaudit_cmd(ks)
            cont[f"kaudit diff, 2 variables{label}{tag}"] = kaudit_cmd(kt)
            if base:
                cont[f"kaudit (baseline), 4,000 variables{label}{tag}"] = kaudit_cmd(ks, base)
                cont[f"kaudit (baseline), 2 variables{label}{tag}"] = kaudit_cmd(kt, base)
        if ext == ".h5" and shutil.which("h5diff"):
            cont["h5diff -d 1e-6, 4,000 variables"] = (
                ["h5diff", "-d", "1e-6", data("small_a.h5"), data("small_b.h5")],
                None,
            )
        cs = Case(title, cont)
        cs.run(args.reps)
        out += table(cs)
        n_vars = 4000 - 2

        def per(kind: str, label: str, cs: Case = cs, tag: str = tag, n_vars: int = n_vars) -> float:
            return (
                (cs.wall(f"{kind}, 4,000 variables{label}{tag}") - cs.wall(f"{kind}, 2 variables{label}{tag}"))
                / n_vars
                * 1e6
            )

        for label in pairs:
            p_wall = per("kaudit diff", label)
            p_cpu = (
                (cs.cpu(f"kaudit diff, 4,000 variables{label}{tag}") - cs.cpu(f"kaudit diff, 2 variables{label}{tag}"))
                / n_vars
                * 1e6
            )
            line = f"per-variable overhead{tag}{label}: {p_wall:.0f} µs wall, {p_cpu:.0f} µs CPU"
            if base:
                line += f" (baseline {per('kaudit (baseline)', label):.0f} µs wall)"
            out += [line, ""]
            name = "per-variable overhead ≤ 50 µs" if not tag and not label else f"(same{tag}{label})"
            verdicts.append((name, f"{p_wall:.0f} µs", p_wall <= 50))

    # 5. start-up and inspect ---------------------------------------------------------------------
    cont = {"kaudit --help": kaudit_cmd(["--help"]), "kaudit --version": kaudit_cmd(["--version"])}
    if have("resnet50.h5"):
        cont["kaudit inspect resnet50.h5"] = kaudit_cmd(["inspect", data("resnet50.h5")])
        if base:
            cont["kaudit (baseline) inspect resnet50.h5"] = kaudit_cmd(["inspect", data("resnet50.h5")], base)
    cst = Case(
        "Start-up and inspect (ResNet50, weights=None, "
        f"{size_mib('resnet50.h5') if have('resnet50.h5') else 0:.0f} MiB .h5)",
        cont,
    )
    cst.run(args.reps)
    out += table(cst)
    for label in ("kaudit --help", "kaudit --version"):
        verdicts.append((f"`{label}` ≤ 0.3 s", f"{cst.wall(label):.3f} s", cst.wall(label) <= 0.3))
    if have("resnet50.h5"):
        w = cst.wall("kaudit inspect resnet50.h5")
        verdicts.append(("`kaudit inspect` ResNet50 .h5 ≤ 0.5 s", f"{w:.3f} s", w <= 0.5))
    tf_paths = [k_big, ["inspect", data("resnet50.h5")] if have("resnet50.h5") else k_big]
    if have("big_a.keras", "big_b.keras"):
        tf_paths.append(["diff", "-q", data("big_a.keras"), data("big_b.keras")])
    tf = any(tf_imported(a) for a in tf_paths)
    verdicts.append(
        ("no TensorFlow import on HDF5/zip paths (python -X importtime)", "imported" if tf else "none", not tf)
    )

    out += ["## Targets", "", "| target | measured | met |", "|---|---:|:---:|"]
    out += [f"| {t} | {m} | {'yes' if ok else '**no**'} |" for t, m, ok in verdicts]
    out += [
        "",
        f"- load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"benchmark took {time.time() - t_start:.0f} s",
        "",
    ]
    text = "\n".join(out)
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as fh:
        fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
