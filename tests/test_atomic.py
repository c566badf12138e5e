"""Atomic writes: the old file or the new one, never half; environment faults are one line naming the path."""

import errno
import json

import pytest

from nasrun.checks import UserError
from nasrun.rundir.atomic import atomic_path, environment_error, write_json

from conftest import run_cli


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "best.json"
    write_json(path, {"trial": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text('{"trial": 2, "half')
            raise RuntimeError("killed mid-write")
    assert json.loads(path.read_text()) == {"trial": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["best.json"]


def test_a_file_in_the_way_is_one_line_naming_the_path(tmp_path):
    (tmp_path / "runs").write_text("not a folder")
    with pytest.raises(UserError, match=r"cannot write .*runs/x/best.json: a file is in the way"):
        write_json(tmp_path / "runs" / "x" / "best.json", {})


@pytest.mark.parametrize("code,fix", [(errno.ENOSPC, "the disk is full"), (errno.EROFS, "read-only"),
                                      (errno.EACCES, "permission denied")])
def test_environment_errors_name_the_fix(code, fix):
    err = environment_error("/runs/best.json", OSError(code, "x"))
    assert str(err).startswith("cannot write /runs/best.json: ") and fix in str(err)


def test_a_run_directory_under_a_file_is_one_line_from_the_command(tmp_path):
    (tmp_path / "blocker").write_text("")
    proc = run_cli("dataset=synthetic", "budget.trials=1", f"hydra.run.dir={tmp_path / 'blocker' / 'run'}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "blocker" in proc.stderr and "in the way" in proc.stderr, proc.stderr
