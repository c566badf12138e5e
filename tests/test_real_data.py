"""Real searches on Fashion-MNIST from the shared data: small, but they must show real learning."""

import json

from conftest import IN_CI, run_cli


def test_fashion_mnist_search_learns(data_root, tmp_path):
    proc = run_cli(f"dataset.root={data_root}", f"dataset.download={str(not IN_CI).lower()}", "dataset.fraction=0.1",
                   "dataset.val_fraction=0.05", "budget.trials=2", "budget.epochs=1", "strategy=random",
                   f"hydra.run.dir={tmp_path}", timeout=600)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in (tmp_path / "trials.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["ok", "ok", "end"]
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["dataset"] == "fashion_mnist" and best["in_channels"] == 1
    assert best["metrics"]["test_acc"] >= 70.0, best["metrics"]


def test_matos_nb201_preset_trains_nb201_cells_on_grey_images_copied_to_three_channels(data_root, tmp_path):
    # The preset, shrunk to seconds: one cell per stage, a tenth of the data, 2 trials of 2 epochs.
    proc = run_cli("+experiment=matos2023_nb201", f"dataset.root={data_root}", f"dataset.download={str(not IN_CI).lower()}",
                   "dataset.fraction=0.1", "budget.trials=2", "budget.epochs=2", "space.cells_per_stage=1",
                   f"hydra.run.dir={tmp_path}", timeout=600)
    assert proc.returncode == 0, proc.stderr
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["space_name"] == "nb201" and best["in_channels"] == 3 and best["image_size"] == 28
    assert best["metrics"]["test_acc"] >= 65.0, best["metrics"]
