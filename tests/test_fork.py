"""kaudit/_fork.py: a function run in a forked child, its result back as plain data, and no child
left behind whatever happens."""

from __future__ import annotations

import os
import time

import pytest

from kaudit import _fork

from .conftest import reaped as _gone

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")


def test_result_comes_back_and_the_child_is_reaped():
    with _fork.forked(lambda: {"pid": os.getpid(), "rows": [(1, "a", None, 2.5, True)] * 3}) as child:
        pid = child.pid
        got = child.result()
    assert got["rows"] == [(1, "a", None, 2.5, True)] * 3
    assert got["pid"] == pid != os.getpid()  # it ran in the child
    assert _gone(pid)


def test_an_error_in_the_child_is_no_result():
    def boom():
        raise ValueError("no")

    with _fork.forked(boom) as child:
        pid = child.pid
        assert child.result() is None
    assert _gone(pid)


def test_a_result_marshal_cannot_carry_is_no_result():
    with _fork.forked(lambda: [object()]) as child:
        assert child.result() is None


def test_an_error_in_the_parent_kills_the_child(monkeypatch):
    import signal

    real_kill, killed = os.kill, []

    def kill(pid, sig):
        killed.append((pid, sig))
        real_kill(pid, sig)

    with pytest.raises(KeyError):
        with _fork.forked(lambda: time.sleep(60)) as child:
            pid = child.pid
            monkeypatch.setattr(_fork.os, "kill", kill)  # in the parent only: the child is running
            raise KeyError("parent failed")
    assert killed == [(pid, signal.SIGKILL)]  # killed, not waited for
    assert _gone(pid)  # and reaped


def test_result_is_waited_for_even_if_not_asked(tmp_path):
    marker = tmp_path / "done"

    def work():
        time.sleep(0.2)
        marker.write_text("x")
        return 1

    with _fork.forked(work) as child:
        pid = child.pid
    assert marker.exists() and _gone(pid)


def test_not_available_with_another_thread():
    import threading

    assert _fork.available()
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert not _fork.available()
    finally:
        stop.set()
        t.join()


def test_the_child_leaves_what_it_inherited_out_of_the_cycle_collector():
    """Objects the parent built are frozen in the child (gc.freeze): collecting them would touch,
    and so copy, every page they are on."""
    import gc

    parent_frozen = gc.get_freeze_count()
    inherited = [{"layer": i} for i in range(1000)]
    with _fork.forked(gc.get_freeze_count) as child:
        frozen = child.result()
    assert frozen >= parent_frozen + len(inherited)
    assert gc.get_freeze_count() == parent_frozen  # the parent's collector is untouched
