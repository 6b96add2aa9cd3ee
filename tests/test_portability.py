"""Systems without ``os.pread``/``os.preadv``/``os.fchmod``/``os.fork`` (Windows): kaudit reads
every format and writes every output there too, by slower means. Simulated by removing them from
``os`` before kaudit is imported, in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import ROOT, fixture

WITHOUT = ("pread", "preadv", "fchmod", "fork")

SCRIPT = """
import json, os, sys
for name in {without!r}:
    if hasattr(os, name):
        delattr(os, name)
import numpy as np
import kaudit
from kaudit.cli import main
out = {{}}
for path in {files!r}:
    with kaudit.load(path) as ckpt:
        out[path] = {{v.path: ckpt.read(v).tobytes().hex() for v in ckpt.all_variables}}
code = main(["diff", {files[0]!r}, {files[1]!r}, "--format", "json", "-o", {report!r}])
out["code"] = code
out["mode"] = oct(os.stat({report!r}).st_mode & 0o777)
print(json.dumps(out))
"""


def _run(tmp_path, without):
    files = [fixture("tutorial/k3.keras"), fixture("tutorial/k2_full.h5")]
    report = str(tmp_path / f"report-{len(without)}.json")
    code = SCRIPT.format(without=without, files=files, report=report)
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert json.loads((tmp_path / f"report-{len(without)}.json").read_text())["passed"] is (doc["code"] == 0)
    return doc


def test_reading_and_writing_without_pread_fchmod_and_fork(tmp_path):
    plain = _run(tmp_path, ())
    bare = _run(tmp_path, WITHOUT)
    assert bare == plain  # the same values, the same verdict, the same file mode
    assert bare["code"] == 0 and bare["mode"] != "0o600"  # an ordinary file, not mkstemp's 0600
