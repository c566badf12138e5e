"""Each proxy against a hand or independent computation on small networks."""

import numpy as np
import pytest
import torch
from torch import nn

from nasrun.proxies import zero_cost as proxies
from nasrun.spaces.nb201 import NB201Arch, NB201Space

# The finite-difference GraSP against the double backward (README, "GraSP without the double backward").
GRASP_TOLERANCE = 1e-2

ALL = [proxies.grad_norm, proxies.snip, proxies.grasp, proxies.fisher, proxies.synflow, proxies.jacob_cov,
       proxies.naswot, proxies.params, proxies.flops]


def two_layer(seed=0, bias=False):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 32, bias=bias), nn.ReLU(), nn.Linear(32, 3, bias=bias))


def batch(n=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 2, 2, generator=g), torch.randint(0, 3, (n,), generator=g)


def manual_grads(net, x, y):
    """∂L/∂W1, ∂L/∂W2 of mean cross-entropy for W2 relu(W1 x), worked out by hand with numpy."""
    w1, w2 = net[1].weight.detach().double().numpy(), net[3].weight.detach().double().numpy()
    xs = x.reshape(len(x), -1).double().numpy()
    h_pre = xs @ w1.T
    h = np.maximum(h_pre, 0)
    logits = h @ w2.T
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d_logits = (p - np.eye(3)[y.numpy()]) / len(x)
    g2 = d_logits.T @ h
    d_h = d_logits @ w2 * (h_pre > 0)
    g1 = d_h.T @ xs
    return (w1, g1), (w2, g2)


def test_grad_norm_and_snip_match_hand_computed_gradients():
    net, (x, y) = two_layer(), batch()
    layers = manual_grads(net, x, y)
    assert proxies.grad_norm(net, (x, y)) == pytest.approx(sum(np.linalg.norm(g) for _, g in layers), rel=1e-5)
    assert proxies.snip(net, (x, y)) == pytest.approx(sum(np.abs(w * g).sum() for w, g in layers), rel=1e-5)


def test_synflow_of_a_bias_free_relu_net_is_depth_times_its_output():
    # With |W| and an all-ones input, each layer's Σ W ⊙ ∂R/∂W equals R itself (Euler's theorem for a
    # 1-homogeneous function), so the score is (number of layers) x R.
    net = two_layer(bias=False)
    w1, w2 = net[1].weight.detach().abs().double(), net[3].weight.detach().abs().double()
    r = (w2 @ torch.relu(w1 @ torch.ones(12, dtype=torch.float64))).sum().item()
    assert proxies.synflow(net, batch()) == pytest.approx(2 * r, rel=1e-9)


def test_synflow_is_finite_for_the_deepest_nb201_cell():
    space = NB201Space()
    torch.manual_seed(0)
    model = space.build(NB201Arch(("nor_conv_3x3",) * 6), 3, 32, 10)
    score = proxies.synflow(model, (torch.randn(4, 3, 32, 32), torch.zeros(4, dtype=torch.long)))
    assert np.isfinite(score) and score > 1e20


def test_jacob_cov_matches_a_numpy_computation_from_explicit_per_sample_jacobians():
    net, (x, y) = two_layer(), batch()
    rows = []
    for i in range(len(x)):  # each sample's full Jacobian, then summed over the outputs
        jac = torch.autograd.functional.jacobian(lambda v: net(v[None])[0], x[i])
        rows.append(jac.reshape(3, -1).sum(0).double().numpy())
    eig = np.linalg.eigvals(np.corrcoef(np.array(rows))).real
    expected = -np.sum(np.log(eig + 1e-5) + 1 / (eig + 1e-5))
    assert proxies.jacob_cov(net, (x, y)) == pytest.approx(expected, rel=1e-6)


def test_naswot_matches_the_kernel_built_by_hand():
    net, (x, y) = two_layer(), batch()
    codes = ((x.reshape(len(x), -1) @ net[1].weight.detach().T) > 0).double().numpy()
    k = codes @ codes.T + (1 - codes) @ (1 - codes).T
    assert proxies.naswot(net, (x, y)) == pytest.approx(np.linalg.slogdet(k)[1], rel=1e-9)


def test_grasp_matches_an_explicit_hessian_gradient_product():
    net, (x, y) = two_layer(), batch()
    w = [net[1].weight, net[3].weight]
    sizes = [p.numel() for p in w]

    def loss(flat):
        a, b = flat[:sizes[0]].reshape(w[0].shape), flat[sizes[0]:].reshape(w[1].shape)
        return nn.functional.cross_entropy(torch.relu(x.reshape(len(x), -1) @ a.T) @ b.T, y)

    flat = torch.cat([p.detach().reshape(-1) for p in w])
    g = torch.autograd.functional.jacobian(loss, flat)
    h = torch.autograd.functional.hessian(loss, flat)
    expected = (-flat * (h @ g)).sum().item()
    assert proxies.grasp(net, (x, y), exact=True) == pytest.approx(expected, rel=1e-4)
    assert proxies.grasp(net, (x, y)) == pytest.approx(expected, rel=GRASP_TOLERANCE)


def test_fisher_is_the_reference_definition_worked_out_by_hand():
    """Abdelfattah et al.'s fisher: per output channel, 0.5 * mean over the batch of (z * dL/dz)^2, given to each
    of the channel's fan-in weights and summed: for linear layers, in_features times the channel value."""
    net, (x, y) = two_layer(), batch()
    w1, w2 = net[1].weight.detach().double().numpy(), net[3].weight.detach().double().numpy()
    xs = x.reshape(len(x), -1).double().numpy()
    h_pre = xs @ w1.T  # the first linear layer's output z1
    logits = np.maximum(h_pre, 0) @ w2.T  # the second's, z2
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d_logits = (p - np.eye(3)[y.numpy()]) / len(x)  # dL/dz2 for the mean cross-entropy
    d_h = d_logits @ w2 * (h_pre > 0)  # dL/dz1
    channel = lambda z, g: 0.5 * ((z * g) ** 2).mean(axis=0)  # noqa: E731
    expected = 12 * channel(h_pre, d_h).sum() + 32 * channel(logits, d_logits).sum()
    assert proxies.fisher(net, (x, y)) == pytest.approx(expected, rel=1e-5)


def test_fisher_sums_a_conv_channel_over_space_and_weights_it_by_its_fan_in():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(4 * 5 * 5, 3))
    x, y = torch.randn(6, 3, 5, 5), torch.arange(6) % 3
    z = net[0](x)
    z.retain_grad()
    out = net[2](net[1](z))
    out.retain_grad()
    nn.functional.cross_entropy(out, y).backward()
    conv = 0.5 * (z * z.grad).sum(dim=(2, 3)).pow(2).mean(0).sum().item()
    linear = 0.5 * (out * out.grad).pow(2).mean(0).sum().item()
    assert proxies.fisher(net, (x, y)) == pytest.approx(3 * 3 * 3 * conv + 100 * linear, rel=1e-5)


@pytest.mark.parametrize("proxy", ALL, ids=lambda p: p.__name__)
def test_proxies_leave_the_model_unchanged_and_are_deterministic(proxy):
    space = NB201Space(8, 1)
    torch.manual_seed(0)
    model = space.build(NB201Arch.from_key(
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"), 3, 16, 10).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = (torch.randn(16, 3, 16, 16, generator=torch.Generator().manual_seed(2)), torch.arange(16) % 10)
    first, second = proxy(model, data), proxy(model, data)
    assert first == second and np.isfinite(first)
    assert not model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_params_and_flops_baselines():
    net = two_layer()
    assert proxies.params(net, batch()) == 12 * 32 + 32 * 3
    assert proxies.flops(net, batch()) == 12 * 32 + 32 * 3
    assert proxies.flops(two_layer(bias=True), batch()) == 12 * 32 + 32 + 32 * 3 + 3  # a bias: one add per output
    conv = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.AvgPool2d(2))  # pooling is not counted
    assert proxies.flops(conv, (torch.zeros(2, 3, 5, 5), None)) == 4 * 5 * 5 * 3 * 9


@pytest.mark.parametrize("cell,mflops", [
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|", 220.11969),
    ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", 7.78305),
    ("|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|", 7.78305),
])
def test_flops_count_as_nas_bench_201_does(cell, mflops):
    """NAS-Bench-201's CIFAR-10 cells range from 7.78 to 220.11 MFLOPs by its profiler; pooling adds nothing."""
    model = NB201Space().build(NB201Arch.from_key(cell), 3, 32, 10)
    assert proxies.flops(model, (torch.zeros(2, 3, 32, 32), None)) / 1e6 == pytest.approx(mflops, abs=1e-5)


def test_the_shared_pass_gives_each_proxy_its_own_score_and_keeps_failures_apart():
    space = NB201Space(4, 1)
    torch.manual_seed(0)
    model = space.build(space.sample(np.random.default_rng(2)), 3, 16, 10)
    data = (torch.randn(16, 3, 16, 16), torch.randint(0, 10, (16,)))
    together = proxies.gradient_proxies(model, data)
    for name in proxies.GRADIENT_PROXIES:
        assert together[name] == pytest.approx(getattr(proxies, name)(model, data), rel=1e-6), name
    # A network whose output ignores its input: no input gradient, so jacob_cov alone has no score.
    flat = nn.Sequential(nn.Flatten(), nn.Linear(768, 10))
    with torch.no_grad():
        flat[1].weight.zero_()
    scores = proxies.gradient_proxies(flat, data)
    assert isinstance(scores["jacob_cov"], ValueError) and "constant" in str(scores["jacob_cov"])
    assert all(np.isfinite(scores[n]) for n in ("grad_norm", "snip", "fisher", "grasp"))
    with pytest.raises(ValueError, match="constant"):
        proxies.jacob_cov(flat, data)


def test_a_cell_that_ignores_its_input_fails_jacob_cov_cleanly_and_ranks_last_elsewhere():
    torch.manual_seed(0)
    model = NB201Space(4, 1).build(NB201Arch(("none",) * 6), 3, 16, 10)  # no path from input to output
    data = (torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,)))
    with pytest.raises(ValueError, match="does not depend on the input"):
        proxies.jacob_cov(model, data)
    assert proxies.grad_norm(model, data) == 0.0 and proxies.synflow(model, data) == 0.0


def conv_bn(seed=0, head=True):
    """conv -> BatchNorm -> ReLU -> pool (-> linear): the BatchNorm makes the conv's weights scale-invariant."""
    torch.manual_seed(seed)
    layers = [nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
              nn.Flatten()]
    return nn.Sequential(*layers, nn.Linear(6, 3)) if head else nn.Sequential(*layers[:2], *layers[3:])


def image_batch(n=16, classes=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, classes, (n,), generator=g)


@pytest.mark.parametrize("net,data", [(two_layer(), batch()), (two_layer(3), batch(seed=4)),
                                      (conv_bn(), image_batch()), (conv_bn(5), image_batch(seed=6))])
def test_grasp_by_difference_matches_the_double_backward(net, data):
    exact = proxies.grasp(net, data, exact=True)
    assert proxies.grasp(net, data) == pytest.approx(exact, rel=GRASP_TOLERANCE)


def test_grasp_by_difference_on_a_scale_invariant_network():
    """Every weight feeds a BatchNorm: the loss does not move along θ, yet H θ = −g (the gradient scales as
    1/c), so GraSP = ‖g‖². A difference of losses would give 0; the difference of gradients gets it right."""
    net, data = conv_bn(head=False), image_batch(classes=6)
    weight = net[0].weight
    loss = nn.functional.cross_entropy(net(data[0]), data[1])
    (g,) = torch.autograd.grad(loss, [weight])
    squared = g.double().pow(2).sum().item()
    assert proxies.grasp(net, data, exact=True) == pytest.approx(squared, rel=1e-3)
    assert proxies.grasp(net, data) == pytest.approx(squared, rel=GRASP_TOLERANCE)


def test_grasp_by_difference_ranks_nb201_cells_as_the_double_backward_does(data_root):
    """Real CIFAR-10 images and NAS-Bench-201 cells: the same sign and the same order."""
    from nasrun.data.builtin import cifar10

    data = cifar10(str(data_root), download=False, fraction=0.02, seed=0)
    images = (data.normalize(data.train_x[:32]), data.train_y[:32])
    space, rng = NB201Space(8, 1), np.random.default_rng(11)
    exact, difference = [], []
    for _ in range(6):
        torch.manual_seed(len(exact))
        model = space.build(space.sample(rng), 3, 32, 10)
        exact.append(proxies.grasp(model, images, exact=True))
        difference.append(proxies.grasp(model, images))
    assert np.sign(exact).tolist() == np.sign(difference).tolist()
    assert np.argsort(exact).tolist() == np.argsort(difference).tolist()
    # Small networks on 32 images: within 5 % of the largest score (full-size cells on 64: README's figures).
    assert difference == pytest.approx(exact, abs=0.05 * np.max(np.abs(exact)))


@pytest.mark.parametrize("exact", [False, True])
def test_scoring_leaves_the_model_bit_for_bit_unchanged(exact):
    space = NB201Space(4, 1)
    torch.manual_seed(0)
    model = space.build(NB201Arch.from_key(
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"), 3, 16, 10)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = (torch.randn(16, 3, 16, 16), torch.randint(0, 10, (16,)))
    scores = proxies.gradient_proxies(model, data, exact=exact)
    assert all(np.isfinite(v) for v in scores.values())
    for proxy in (proxies.synflow, proxies.naswot, proxies.flops):
        proxy(model, data)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BatchNorm statistics alike
    assert not model.training and all(p.grad is None for p in model.parameters())
