"""nasrun.hardware: NAS-Bench-201's latency table read and checked row by row, and the size of networks
(params, FLOPs) against counts worked out by hand."""

import numpy as np
import pytest

from nasrun.checks import UserError
from nasrun.hardware.cost import CostOf
from nasrun.hardware.latency_table import TableLatency, read_latency_table
from nasrun.pareto import nondominated
from nasrun.spaces.nb201 import NB201Arch, NB201Space

SPACE = NB201Space()


def cell(op: str) -> NB201Arch:
    return NB201Arch((op,) * 6)


def test_sizes_of_nb201_cells_by_hand():
    """C=16, N=5 on CIFAR-10. The skeleton (every edge `none`): stem conv 3->16 (432 + BN 32), two residual
    reductions (16->32: 4608 + 9216 + 512 shortcut + BN 128; 32->64: 18432 + 36864 + 2048 + BN 256), head BN 128,
    classifier 64*10 + 10 = 73,306 parameters; multiply-adds 432*1024 + 2*(1,179,648 + 2,359,296 + 131,072) + 640
    = 7,783,040, so 15,566,080 FLOPs. A 3x3 convolution edge adds 9C^2 + 2C per stage and 9C^2 * HW multiply-adds
    (2,359,296 in every stage), times 5 cells: 243,040 parameters and 35,389,440 multiply-adds."""
    cost = CostOf(SPACE, 3, 32, 10)
    assert cost.count(cell("none")) == {"params": 73306.0, "flops": 2 * 7783040.0}
    assert cost.count(cell("nor_conv_3x3")) == {"params": 73306.0 + 6 * 243040, "flops": 2 * (7783040.0 + 6 * 35389440)}
    # 1x1: C^2 + 2C per stage (5 * 5,600 per edge), C^2 * HW = 262,144 multiply-adds per stage.
    assert cost.count(cell("nor_conv_1x1")) == {"params": 73306.0 + 6 * 28000, "flops": 2 * (7783040.0 + 6 * 3932160)}
    # Pooling and skips cost nothing (NAS-Bench-201's convention, though its pooling runs as a convolution here).
    assert cost.count(cell("avg_pool_3x3")) == cost.count(cell("skip_connect")) == cost.count(cell("none"))


def test_the_published_ranges_and_the_additive_count_agree_with_counting():
    cost = CostOf(SPACE, 3, 32, 10)
    assert 0.07e6 < cost(cell("none"))["params"] < 0.075e6 and 1.53e6 < cost(cell("nor_conv_3x3"))["params"] < 1.54e6
    rng = np.random.default_rng(0)
    for _ in range(8):
        arch = SPACE.sample(rng)
        assert cost(arch) == cost.count(arch)


def test_latency_table_reads_every_device(data_root):
    devices, rows = read_latency_table(data_root / "nasbench201" / "nb201_latency.csv")
    assert len(rows) == 15625 and len(devices) == 27
    assert {"eyeriss", "fpga", "pixel3", "raspi4", "gold_6226", "1080ti_256"} <= set(devices)
    latency = TableLatency(SPACE, "pixel3", data_root / "nasbench201" / "nb201_latency.csv")
    first = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
    assert latency(SPACE.from_key(first)) == pytest.approx(3.60585)


def test_unknown_device_and_wrong_space_are_one_line(data_root):
    table = data_root / "nasbench201" / "nb201_latency.csv"
    with pytest.raises(UserError, match=r"latency.device='pixel9' is not in .*choose one of: 1080ti_1, "):
        TableLatency(SPACE, "pixel9", table)
    with pytest.raises(UserError, match="space.channels=16"):
        TableLatency(NB201Space(8, 1), "pixel3", table)


@pytest.mark.parametrize("edit,problem", [
    (lambda f: f.replace(",3.60585,", ",-3.6,", 1), r":2 pixel3_ms=-3.6: a latency must be"),
    (lambda f: f.replace(",3.60585,", ",nan,", 1), r":2 pixel3_ms=nan: a latency must be"),
    (lambda f: f.replace(",3.60585,", ",fast,", 1), r":2 pixel3_ms='fast' is not a number"),
    (lambda f: f.replace(",3.60585,", ",", 1), r":2 has 28 fields, the header 29"),
    (lambda f: f.replace("|avg_pool_3x3~0|+", "|max_pool~0|+", 1), r":2 arch: "),
    (lambda f: f.replace("index,arch,", "index,cell,", 1), "does not start with the columns index,arch"),
    (lambda f: f.replace("eyeriss_ms", "eyeriss", 1), "the column 'eyeriss' is not <device>_ms"),
])
def test_a_malformed_latency_table_names_the_row(edit, problem, data_root, tmp_path):
    text = (data_root / "nasbench201" / "nb201_latency.csv").read_text()
    lines = text.splitlines(keepends=True)
    bad = tmp_path / "nb201_latency.csv"
    bad.write_text(edit("".join(lines[:40])))
    with pytest.raises(UserError, match=problem):
        read_latency_table(bad)


def test_repeated_cell_is_refused(data_root, tmp_path):
    lines = (data_root / "nasbench201" / "nb201_latency.csv").read_text().splitlines(keepends=True)
    bad = tmp_path / "nb201_latency.csv"
    bad.write_text("".join(lines[:3] + [lines[1]]))
    with pytest.raises(UserError, match=":4 repeats the cell"):
        read_latency_table(bad)


def test_pareto_set_of_the_whole_table_on_one_device_matches_brute_force(data_root):
    """Accuracy (200-epoch test) against pixel3 latency over all 15,625 cells: moocore's non-dominated set is
    exactly the set of cells no other cell beats on both."""
    import csv

    latency = TableLatency(SPACE, "pixel3", data_root / "nasbench201" / "nb201_latency.csv").all()
    with open(data_root / "nasbench201" / "nb201.csv", newline="") as f:
        accuracy = {row["arch"]: float(row["cifar10_test_acc200"]) for row in csv.DictReader(f)}
    keys = sorted(accuracy)
    points = np.array([(accuracy[k], -latency[k]) for k in keys])
    mask = nondominated(points)
    # Brute force: sort by accuracy (then latency) descending; a point is non-dominated iff it is strictly
    # faster than every point that is at least as accurate and not equal to it.
    brute = np.zeros(len(points), dtype=bool)
    for i, (acc, neg_lat) in enumerate(points):
        ge = (points[:, 0] >= acc) & (points[:, 1] >= neg_lat)
        strictly = (points[:, 0] > acc) | (points[:, 1] > neg_lat)
        brute[i] = not np.any(ge & strictly)
    assert (mask == brute).all() and 5 <= mask.sum() < 200
