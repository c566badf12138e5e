"""The NAS-Bench-201 supernet: a discretised cell is `space=nb201`'s network, and the mixed operation is the
weighted sum of the five operations."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nasrun.oneshot.supernet import MixedCell, Supernet, discretise, indices, one_hot
from nasrun.spaces.nb201 import OPERATIONS, NB201Arch, NB201Space


def _randomised(module, seed):
    """Random BatchNorm statistics and affine parameters, so a wrong mapping of any tensor shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=generator))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=generator) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.randn(m.weight.shape, generator=generator))
                    m.bias.copy_(torch.randn(m.bias.shape, generator=generator))
    return module


@pytest.mark.parametrize("affine", [True, False])
def test_a_discretised_cell_is_the_network_space_nb201_builds(affine):
    space = NB201Space(channels=4, cells_per_stage=2)
    rng = np.random.default_rng(0)
    cells = [space.sample(rng) for _ in range(6)] + [NB201Arch(("none",) * 6), NB201Arch(("skip_connect",) * 6)]
    torch.manual_seed(0)
    supernet = _randomised(Supernet(3, 10, 4, 2, affine=affine), 1)
    x = torch.randn(4, 3, 16, 16)
    for arch in cells:
        network = discretise(supernet, arch, space, 3, 16, 10)
        built = space.build(arch, 3, 16, 10)
        assert type(network) is type(built)
        assert {k: v.shape for k, v in network.state_dict().items()} == \
            {k: v.shape for k, v in built.state_dict().items()}
        for mode in ("eval", "train"):  # running statistics, then batch statistics
            supernet.train(mode == "train")
            network.train(mode == "train")
            with torch.no_grad():
                expected = supernet(x, one_hot(arch), indices(arch))
                assert torch.allclose(network(x), expected, atol=1e-5, rtol=1e-5), (arch.key, mode)
                # The DARTS forward with one-hot weights (every operation run, all but one weighted 0): the same.
                assert torch.allclose(supernet(x, one_hot(arch)), expected, atol=1e-5, rtol=1e-5)


def test_the_mixed_operation_is_the_weighted_sum_of_the_five_operations():
    torch.manual_seed(0)
    cell = _randomised(MixedCell(2), 2).eval()
    x = torch.randn(2, 2, 5, 5)
    weights = torch.softmax(torch.randn(6, 5), dim=1)

    def edge(e, inp):  # by hand: 0·none + w·x + w·conv1x1(x) + w·conv3x3(x) + w·avgpool(x)
        ops = cell.edges[e]
        pool = F.avg_pool2d(inp, 3, 1, 1, count_include_pad=False)
        return (weights[e, 1] * inp + weights[e, 2] * ops["2"](inp) + weights[e, 3] * ops["3"](inp)
                + weights[e, 4] * pool)

    with torch.no_grad():
        n1 = edge(0, x)
        n2 = edge(1, x) + edge(2, n1)
        n3 = edge(3, x) + edge(4, n1) + edge(5, n2)
        assert torch.allclose(cell(x, weights), n3, atol=1e-6)
        # `none` carries weight but adds nothing: raising its weight alone changes nothing.
        more_none = weights.clone()
        more_none[:, OPERATIONS.index("none")] += 1.0
        assert torch.allclose(cell(x, more_none), n3, atol=1e-6)


def test_one_active_operation_per_edge_runs_alone():
    cell = MixedCell(2)
    ran = []
    for e, ops in enumerate(cell.edges):
        for o, op in ops.items():
            op.register_forward_hook(lambda module, args, out, key=(e, int(o)): ran.append(key))
    arch = NB201Arch(("nor_conv_3x3", "skip_connect", "none", "nor_conv_1x1", "avg_pool_3x3", "nor_conv_3x3"))
    cell(torch.randn(1, 2, 4, 4), one_hot(arch), indices(arch))
    assert sorted(ran) == sorted((e, o) for e, o in enumerate(indices(arch)) if OPERATIONS[o] != "none")
