"""Tests for jaxcifar.console: bars on terminals, timed lines in log files, Ctrl-C and SIGTERM."""

import io
import os
import signal

import pytest

from jaxcifar import console
from jaxcifar.console import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_file_gets_a_line_every_interval_and_no_bar():
    log = io.StringIO()
    progress = Progress(True, total=10, desc="epoch 1/24", every_s=0.0, stream=log)
    progress.update(1)
    progress.update(1, loss="2.301")
    progress.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and progress.bar is None
    assert lines[0].startswith("  epoch 1/24: 1/10 steps, ") and "s left" in lines[0]
    assert lines[1].startswith("  epoch 1/24: 2/10 steps, ") and lines[1].endswith("loss 2.301")


def test_lines_wait_for_their_interval():
    log = io.StringIO()
    progress = Progress(True, total=10, desc="x", every_s=3600.0, stream=log)
    for _ in range(10):
        progress.update(1)
    assert log.getvalue() == ""  # a 15-minute CPU epoch prints once a minute, not every step


def test_a_terminal_gets_a_bar_and_disabled_progress_gets_nothing():
    term = Terminal()
    progress = Progress(True, total=4, desc="epoch 2/3", initial=1, stream=term)
    progress.update(1, loss="1.000")
    progress.close()
    assert progress.bar is not None and "epoch 2/3" in term.getvalue()
    quiet = io.StringIO()
    off = Progress(False, total=4, desc="x", every_s=0.0, stream=quiet)
    off.update(1)
    assert quiet.getvalue() == "" and off.bar is None


def test_sigterm_asks_for_a_stop_like_ctrl_c_and_a_second_signal_quits_at_once(capsys):
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with console.StopRequest() as stop:
        assert not stop.requested and stop.signal is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.signal == "SIGTERM"
        assert "SIGTERM: saving a checkpoint after this step (SIGTERM again to quit at once)." in (
            capsys.readouterr().err
        )
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
        assert stop.signal == "SIGTERM"  # the first signal is the one that asked
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_a_notebook_gets_a_bar_though_its_output_is_no_terminal(monkeypatch):
    import sys
    import types

    class ZMQInteractiveShell:  # what IPython's get_ipython() returns in a Jupyter or Colab kernel
        pass

    assert not console.in_notebook()  # pytest is no kernel
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=ZMQInteractiveShell))
    assert console.in_notebook()
    out = io.StringIO()  # a kernel's stream: no isatty
    progress = Progress(True, total=3, desc="epoch 1/24", stream=out)
    progress.update(1)
    progress.close()
    assert progress.bar is not None and not progress.logging
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))  # plain python
    assert not console.in_notebook()
