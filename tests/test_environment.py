"""run.json: each start of a run records versions and hardware; a damaged file is a one-line error."""

import json

import pytest
import torch

from nasrun import __version__
from nasrun.checks import UserError
from nasrun.environment import read_starts, record_start


def test_each_start_is_appended_with_versions_and_hardware(tmp_path):
    record_start(tmp_path, torch.device("cpu"))
    record_start(tmp_path, torch.device("cpu"))
    starts = read_starts(tmp_path)
    assert len(starts) == 2 and starts[0]["nasrun"] == __version__ and starts[0]["torch"] == torch.__version__
    assert starts[0]["cpu"] and starts[0]["device"] == "cpu" and starts[0]["threads"] == torch.get_num_threads()
    assert not list(tmp_path.glob(".*tmp"))  # written atomically, no leftovers


@pytest.mark.parametrize("content", ["{not json", json.dumps({"starts": [{"nasrun": "0.2"}]}), "[]"])
def test_a_damaged_run_json_is_named(tmp_path, content):
    (tmp_path / "run.json").write_text(content)
    with pytest.raises(UserError, match="run.json"):
        read_starts(tmp_path)
