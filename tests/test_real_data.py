"""Real searches on Fashion-MNIST from the shared data: small, but they must show real learning."""

import json

from conftest import IN_CI, run_cli


def test_fashion_mnist_search_learns(data_root, tmp_path):
    # make run's fidelity (3 % of the training images, 1,000 for validation), one trial (a trial takes 20-40 s).
    proc = run_cli(f"dataset.root={data_root}", f"dataset.download={str(not IN_CI).lower()}", "budget.trials=1",
                   "budget.epochs=1", "strategy=random", f"hydra.run.dir={tmp_path}", timeout=600)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in (tmp_path / "trials.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["ok", "end"]
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["dataset"] == "fashion_mnist" and best["in_channels"] == 1
    assert best["metrics"]["test_acc"] >= 60.0, best["metrics"]  # chance: 10 %


def test_matos_nb201_preset_trains_nb201_cells_on_grey_images_copied_to_three_channels(data_root, tmp_path):
    # The preset, shrunk to seconds: one cell per stage, 5 % of the data, 1,000 images to validate, 1 trial.
    proc = run_cli("+experiment=matos2023_nb201", f"dataset.root={data_root}",
                   f"dataset.download={str(not IN_CI).lower()}",
                   "dataset.fraction=0.05", "dataset.val_size=1000", "budget.trials=1", "budget.epochs=2",
                   "space.cells_per_stage=1", f"hydra.run.dir={tmp_path}", timeout=600)
    assert proc.returncode == 0, proc.stderr
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["space_name"] == "nb201" and best["in_channels"] == 3 and best["image_size"] == 28
    assert best["metrics"]["test_acc"] >= 55.0, best["metrics"]  # chance: 10 %; two epochs of 2,950 images
