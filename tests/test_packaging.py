"""A non-editable install must carry the config groups: the wheel holds conf/ as nasrun/conf."""

import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import CONF_DIR, REPO


def test_the_wheel_holds_every_config_file(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("nasrun-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"nasrun/conf/{p.relative_to(CONF_DIR).as_posix()}" for p in Path(CONF_DIR).rglob("*.yaml")}
    assert "nasrun/conf/config.yaml" in expected and expected <= names
