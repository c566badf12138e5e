"""run.json: each start of a run records versions and hardware; a damaged file is warned about and replaced."""

import json

import pytest
import torch

from nasrun import __version__
from nasrun.rundir.environment import read_starts, record_start


def test_each_start_is_appended_with_versions_and_hardware(tmp_path):
    record_start(tmp_path, torch.device("cpu"))
    record_start(tmp_path, torch.device("cpu"))
    starts = read_starts(tmp_path)
    assert len(starts) == 2 and starts[0]["nasrun"] == __version__ and starts[0]["torch"] == torch.__version__
    assert starts[0]["cpu"] and starts[0]["device"] == "cpu" and starts[0]["threads"] == torch.get_num_threads()
    assert not list(tmp_path.glob(".*tmp"))  # written atomically, no leftovers


@pytest.mark.parametrize("content", [b"{not json", json.dumps({"starts": [{"nasrun": "0.2"}]}).encode(), b"[]",
                                     b'{"starts": [\xff]}'])
def test_a_damaged_run_json_is_named_in_a_warning_and_replaced(tmp_path, content, caplog):
    (tmp_path / "run.json").write_bytes(content)
    assert read_starts(tmp_path) == []
    assert f"{tmp_path / 'run.json'} is damaged" in caplog.text
    record_start(tmp_path, torch.device("cpu"))
    assert len(read_starts(tmp_path)) == 1
