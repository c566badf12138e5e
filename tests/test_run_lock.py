"""One writer per run directory: a second process is refused with one line naming the holder; a lock left by a
killed process is taken over with a warning."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from nasrun.bench.faults.cases import (
    HOLD,  # a process that holds a run directory's lock until killed
)
from nasrun.checks import UserError
from nasrun.rundir.lock import hold_run_dir


@pytest.fixture
def holder(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield proc
    proc.kill()
    proc.wait()


def test_a_second_writer_is_refused_naming_the_holder(tmp_path, holder):
    with pytest.raises(UserError, match=f"is in use by pid {holder.pid} on "):
        with hold_run_dir(tmp_path / "run"):
            pass
    # The command on a locked directory: "two writers on one run folder" in tests/test_faults.py.


def test_a_lock_left_by_a_killed_process_is_taken_over_with_a_warning(tmp_path, holder, caplog):
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert json.loads((tmp_path / "run" / "run.lock").read_text())["pid"] == holder.pid  # left behind
    with hold_run_dir(tmp_path / "run"):
        assert json.loads((tmp_path / "run" / "run.lock").read_text())["pid"] == os.getpid()
    assert f"took over the lock of pid {holder.pid}" in caplog.text
    assert (tmp_path / "run" / "run.lock").read_text() == ""  # released cleanly


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    with hold_run_dir(tmp_path):
        with hold_run_dir(tmp_path):
            pass
        probe = subprocess.run([sys.executable, "-c", HOLD.replace("time.sleep(600)", "pass"), str(tmp_path)],
                               capture_output=True, text=True, timeout=60)
        assert probe.returncode != 0 and "is in use by pid" in probe.stderr
    started = time.monotonic()
    probe = subprocess.run([sys.executable, "-c", HOLD.replace("time.sleep(600)", "pass"), str(tmp_path)],
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0 and time.monotonic() - started < 30
