"""The command line's stall watchdog (kaudit/_watchdog.py): a worker that makes no progress is
stopped with exit 2 and one line; progress keeps it alive; exit codes and Ctrl-C pass through."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from .conftest import ROOT

SCRIPT = """
import os, sys, time
from kaudit import _watchdog as W
mode = sys.argv[1]
def work():
    W.status("model.h5")
    if mode == "stall":
        time.sleep(60)
    if mode == "busy":
        for _ in range(30):
            time.sleep(0.1)
            W.beat()
        return 1
    if mode == "code":
        return 7
    if mode == "interrupt":
        try:
            time.sleep(60)
        except KeyboardInterrupt:
            print("worker stopped cleanly", file=sys.stderr)
            return 130
    return 0
sys.exit(W.supervise(work))
"""


def run(mode: str, timeout: str = "1", send_sigint: bool = False):
    env = dict(os.environ, PYTHONPATH=str(ROOT), KAUDIT_STALL_TIMEOUT=timeout)
    p = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, mode], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if send_sigint:
        time.sleep(1.0)
        p.send_signal(signal.SIGINT)
    _out, err = p.communicate(timeout=60)
    return p.returncode, err


def test_stalled_worker_is_stopped():
    t0 = time.monotonic()
    code, err = run("stall")
    assert code == 2 and time.monotonic() - t0 < 20
    assert err.strip() == (
        "kaudit: error: model.h5: no progress for 1 s while reading it, stopped (HDF5 loops "
        "forever on some corrupted files; set KAUDIT_STALL_TIMEOUT to wait longer)"
    )


def test_progress_keeps_the_worker_alive_and_codes_pass_through():
    assert run("busy") == (1, "")  # 3 s of work with a 1 s stall limit
    assert run("code")[0] == 7


def test_disabled_with_zero():
    assert run("code", timeout="0")[0] == 7


def test_ctrl_c_reaches_the_worker():
    code, err = run("interrupt", timeout="30", send_sigint=True)
    assert code == 130 and "worker stopped cleanly" in err


@pytest.mark.parametrize("args,code", [(["--version"], 0), (["diff"], 2)])
def test_cli_under_watchdog(args, code):
    r = subprocess.run(
        [sys.executable, "-m", "kaudit", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        timeout=60,
    )
    assert r.returncode == code
