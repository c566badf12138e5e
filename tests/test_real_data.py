"""A real search on Fashion-MNIST from the shared data (small, but it must show real learning), and the
Matos (2023) NAS-Bench-201 preset's grey-to-RGB path on synthetic images."""

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


def test_matos_nb201_preset_trains_nb201_cells_on_grey_images_copied_to_three_channels(tmp_path):
    # The preset's path (grey images copied into three channels, NAS-Bench-201 cells at 28 px), shrunk to
    # seconds on synthetic 28-px grey images: the learning on real data is the test above.
    proc = run_cli("+experiment=matos2023_nb201", "dataset=synthetic", "dataset.image_size=28", "dataset.num_train=512",
                   "dataset.num_test=128", "budget.trials=1", "budget.epochs=2", "space.cells_per_stage=1",
                   f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["space_name"] == "nb201" and best["in_channels"] == 3 and best["image_size"] == 28
    assert best["metrics"]["test_acc"] >= 50.0, best["metrics"]  # chance: 25 %
