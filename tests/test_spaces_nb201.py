import csv
import json

import numpy as np
import pytest
import torch

from nasrun.spaces.nb201 import EDGE_NAMES, OPERATIONS, NB201Arch, NB201Space

SPACE = NB201Space()
EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_canonical_string_round_trips_and_is_the_json_form():
    arch = NB201Arch.from_key(EXAMPLE)
    assert arch.key == str(arch) == EXAMPLE == arch.to_json()
    assert arch.ops == ("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_3x3", "skip_connect")
    assert SPACE.from_json(json.loads(json.dumps(arch.to_json()))) == arch
    assert SPACE.from_json(arch.choices()) == arch  # the dict of edges works too
    assert arch == NB201Arch(list(arch.ops)) and hash(arch) == hash(NB201Arch(arch.ops))
    with pytest.raises(AttributeError):
        arch.ops = ("none",) * 6  # immutable


@pytest.mark.parametrize("text,fault", [
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|", "expected 3 nodes"),
    ("nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "node 1 must be written"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 needs 2 incoming edges, found 1"),
    ("|none~0|+|none~0|none~2|+|none~0|none~1|none~2|", "edge 2<-1 must be written 'op~1'"),
    ("|none|+|none~0|none~1|+|none~0|none~1|none~2|", "edge 1<-0"),
    ("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "edge 1<-0: 'conv_5x5' is not an operation"),
    ("|none~0|+|none~0|none~1|+|none~0|none~1|max_pool~2|", "edge 3<-2: 'max_pool'"),
])
def test_malformed_strings_raise_value_error_naming_the_fault(text, fault):
    with pytest.raises(ValueError, match=fault.replace("|", r"\|")):
        NB201Arch.from_key(text)


def test_invalid_values_name_the_field():
    with pytest.raises(ValueError, match="ops must list 6"):
        NB201Arch(("none",) * 5)
    with pytest.raises(ValueError, match="unknown field 'edge'"):
        SPACE.from_json({"edge": "none"})
    with pytest.raises(ValueError, match="edge 2<-0"):
        NB201Arch(("none", "zero", "none", "none", "none", "none"))


def test_all_15625_cells_are_reachable_distinct_and_match_the_benchmark_table(data_root):
    archs = list(SPACE)
    assert len(SPACE) == 15625 == len(set(archs)) == len({a.key for a in archs})
    with open(data_root / "nasbench201" / "nb201.csv", newline="") as f:
        table = {row["arch"] for row in csv.DictReader(f)}
    assert table == {a.key for a in archs}  # our canonical strings are exactly the benchmark's


def test_mutation_changes_exactly_one_edge_and_reaches_every_neighbour():
    rng = np.random.default_rng(0)
    parent = NB201Arch.from_key(EXAMPLE)
    children = {SPACE.mutate(parent, rng) for _ in range(2000)}
    assert all(sum(a != b for a, b in zip(parent.ops, c.ops)) == 1 for c in children)
    assert len(children) == 6 * 4  # each edge to each of its 4 other operations


def test_crossover_takes_each_edge_from_a_parent_and_sampling_is_uniform():
    rng = np.random.default_rng(1)
    a, b = SPACE.sample(rng), SPACE.sample(rng)
    for _ in range(50):
        child = SPACE.crossover(a, b, rng)
        assert all(c in (x, y) for c, x, y in zip(child.ops, a.ops, b.ops))
    counts = np.zeros((6, 5))
    for _ in range(5000):
        for e, op in enumerate(SPACE.sample(rng).ops):
            counts[e, OPERATIONS.index(op)] += 1
    assert np.allclose(counts / 5000, 0.2, atol=0.03)


def reference_params(ops, classes=10, C=16, N=5, cin=3) -> int:
    """Parameters of NAS-Bench-201's reference network, counted from its layer list: stem conv + BN; per cell
    and edge, a ReLU-conv-BN has k*k*c*c + 2c (BN weight and bias); two residual blocks; last BN; classifier."""
    total = cin * C * 9 + 2 * C
    for c in (C, 2 * C, 4 * C):
        per_cell = sum({"nor_conv_3x3": 9 * c * c + 2 * c, "nor_conv_1x1": c * c + 2 * c}.get(op, 0) for op in ops)
        total += N * per_cell
    for cin_, cout in ((C, 2 * C), (2 * C, 4 * C)):
        total += 9 * cin_ * cout + 2 * cout + 9 * cout * cout + 2 * cout + cin_ * cout
    return total + 2 * 4 * C + 4 * C * classes + classes


@pytest.mark.parametrize("ops,expected", [
    (("nor_conv_3x3",) * 6, 1_531_546),  # the figure for the benchmark's all-3x3 cell
    (("none",) * 6, 73_306),  # NAS-Bench-201's smallest network (0.073 MB)
    (NB201Arch.from_key(EXAMPLE).ops, 802_426),
])
def test_parameter_counts_match_the_reference_network(ops, expected):
    assert params(SPACE.build(NB201Arch(ops), 3, 32, 10)) == expected == reference_params(ops)


def test_parameter_counts_of_random_cells_and_other_sizes_follow_the_reference_layers():
    rng = np.random.default_rng(2)
    for _ in range(10):
        arch = SPACE.sample(rng)
        assert params(SPACE.build(arch, 3, 32, 10)) == reference_params(arch.ops)
        assert params(SPACE.build(arch, 3, 32, 100)) == reference_params(arch.ops, classes=100)
    arch = SPACE.sample(rng)
    assert params(NB201Space(8, 2).build(arch, 1, 28, 10)) == reference_params(arch.ops, C=8, N=2, cin=1)


@pytest.mark.parametrize("channels,size", [(3, 32), (1, 28), (3, 16)])
def test_forward_pass_on_colour_and_grey_images(channels, size):
    torch.manual_seed(0)
    model = SPACE.build(NB201Arch.from_key(EXAMPLE), channels, size, 10)
    out = model(torch.randn(4, channels, size, size))
    assert out.shape == (4, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_cell_whose_output_node_has_only_none_edges_still_runs():
    arch = NB201Arch(("nor_conv_3x3", "none", "none", "none", "none", "none"))
    model = SPACE.build(arch, 3, 32, 10).eval()
    with torch.no_grad():
        a, b = model(torch.randn(2, 3, 32, 32)), model(torch.randn(2, 3, 32, 32))
    assert torch.allclose(a, b)  # the cells output zero, so the input cannot matter


def test_image_sizes_the_network_cannot_halve_twice_are_refused():
    with pytest.raises(ValueError, match="image_size=30"):
        SPACE.build(SPACE.sample(np.random.default_rng(0)), 3, 30, 10)
    with pytest.raises(ValueError, match="channels"):
        NB201Space(channels=0)


def test_edge_names_are_listed_in_canonical_order():
    assert EDGE_NAMES == ("1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2")
    assert list(NB201Arch.CHOICES) == list(EDGE_NAMES)


@pytest.mark.parametrize("shape", [(2, 3, 1, 1), (2, 3, 2, 5), (4, 16, 32, 32), (3, 8, 7, 3)])
def test_the_pooling_edge_equals_pytorchs_border_average_pooling_and_its_gradients(shape):
    import torch
    from torch import nn

    from nasrun.spaces.nb201_network import BorderAvgPool3x3

    for dtype in (torch.float32, torch.float64):
        x = torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
        reference = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        ours, theirs = BorderAvgPool3x3()(x), reference(x)
        assert torch.allclose(ours, theirs, rtol=1e-6, atol=1e-7)
        weights = torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
        (g_ours,) = torch.autograd.grad((ours * weights).sum(), x, create_graph=True)
        (g_theirs,) = torch.autograd.grad((theirs * weights).sum(), x, create_graph=True)
        assert torch.allclose(g_ours, g_theirs, rtol=1e-6, atol=1e-7)
    assert list(BorderAvgPool3x3().state_dict()) == []  # no parameters, no buffers: state dicts unchanged
