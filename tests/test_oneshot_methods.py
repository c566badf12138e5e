"""DARTS, GDAS and random paths (`nasrun.oneshot.methods`): their estimators, schedules and second-order step
against hand-worked values and autograd, and a toy task on which DARTS and GDAS must find the best operation."""

import pytest
import torch
import torch.nn.functional as F

from nasrun.oneshot.methods import DARTS, GDAS, RSPS, gumbel_straight_through, uniform_path, unrolled_alpha_grad
from nasrun.oneshot.supernet import MixedCell
from nasrun.spaces.nb201 import OPERATIONS


def test_gdas_forward_is_one_hot_and_the_gradient_reaches_alpha():
    alpha = torch.randn(6, 5, generator=torch.Generator().manual_seed(0))
    alpha[:, OPERATIONS.index("nor_conv_1x1")] += 8.0  # convolutions nearly everywhere: no edge left out as `none`
    alpha.requires_grad_(True)
    weights, active = gumbel_straight_through(alpha, 1.0, torch.Generator().manual_seed(1))
    assert OPERATIONS.index("none") not in active
    expected = torch.zeros(6, 5)
    expected[range(6), active] = 1.0
    assert torch.allclose(weights, expected, atol=1e-6)  # hard in the forward pass
    cell = MixedCell(2)
    x = torch.randn(2, 2, 4, 4)
    ran = []
    for e, ops in enumerate(cell.edges):
        for o, op in ops.items():
            op.register_forward_hook(lambda module, args, out, key=(e, int(o)): ran.append(key))
    cell(x, weights, active).square().mean().backward()
    assert sorted(ran) == sorted((e, o) for e, o in enumerate(active) if OPERATIONS[o] != "none")  # one op runs
    assert alpha.grad is not None and alpha.grad.abs().sum() > 0  # soft in the backward pass
    # Every entry of an edge's row gets a gradient through the softmax, not only the sampled one.
    assert all((alpha.grad[e] != 0).sum() == 5 for e in range(6))


def test_gdas_draws_again_until_finite_and_gives_up_on_a_diverged_alpha():
    alpha = torch.zeros(6, 5)
    alpha[2, 1] = float("nan")
    with pytest.raises(FloatingPointError, match="not finite"):
        gumbel_straight_through(alpha, 1.0, torch.Generator().manual_seed(0))


def test_gdas_temperature_falls_linearly_from_tau_max_to_tau_min():
    gdas = GDAS(epochs=250)
    assert gdas.tau(0) == 10.0 and gdas.tau(249) == pytest.approx(0.1)
    taus = [gdas.tau(e) for e in range(250)]
    steps = [a - b for a, b in zip(taus, taus[1:])]
    assert all(s == pytest.approx(9.9 / 249) for s in steps)
    assert GDAS(epochs=1).tau(0) == 10.0
    with pytest.raises(ValueError, match="tau_max"):
        GDAS(tau_max=0.05)


def test_the_weights_learning_rate_is_cosine_per_epoch_to_lr_min():
    darts = DARTS(epochs=50)
    assert darts.learning_rate(0) == 0.025
    assert darts.learning_rate(25) == pytest.approx((0.025 + 0.001) / 2)
    assert darts.learning_rate(50) == pytest.approx(0.001)


@pytest.mark.parametrize("momentum,weight_decay,with_buffer", [(0.0, 0.0, False), (0.9, 5e-4, True)])
def test_second_order_darts_step_matches_autograd_on_a_quadratic(momentum, weight_decay, with_buffer):
    g = torch.Generator().manual_seed(0)
    torch.set_default_dtype(torch.float64)
    try:
        A = torch.randn(4, 4, generator=g)
        A = A @ A.T + torch.eye(4)
        B, C = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
        target = torch.randn(4, generator=g)
        w = torch.randn(4, generator=g).requires_grad_(True)
        alpha = torch.randn(3, generator=g).requires_grad_(True)
        buffer = torch.randn(4, generator=g) if with_buffer else None
        lr = 0.1

        def train_loss(w=w):
            return 0.5 * w @ A @ w + w @ B @ alpha + (alpha ** 2).sum()

        def val_loss(w=w):
            return 0.5 * ((w - target) ** 2).sum() + w @ C @ alpha + alpha.sum()

        # Exact: differentiate through w' = w - lr (m·buffer + ∇w L_train(w, α) + wd·w).
        grad_w = torch.autograd.grad(train_loss(), w, create_graph=True)[0]
        step = grad_w + weight_decay * w + (momentum * buffer if buffer is not None else 0)
        exact = torch.autograd.grad(val_loss(w - lr * step), alpha)[0]

        before = w.detach().clone()
        got = unrolled_alpha_grad([w], alpha, train_loss, val_loss, lr=lr, momentum=momentum,
                                  weight_decay=weight_decay, buffers=[buffer], r=1e-2)
        assert torch.allclose(got, exact, rtol=1e-6, atol=1e-8)
        assert torch.equal(w.detach(), before)  # the parameters are put back
    finally:
        torch.set_default_dtype(torch.float32)


class Toy(torch.nn.Module):
    """Every edge applies one of five fixed maps to the features; the logits are their α-weighted mean, times a
    learned positive scale. The label is the argmax of the features, so `skip_connect` (the identity) is the
    one operation that predicts it; the others give nothing (none, the constant), the opposite (negation) or
    the features in another order."""

    maps = (lambda x: torch.zeros_like(x), lambda x: x, lambda x: -x, lambda x: x.flip(1),
            lambda x: torch.ones_like(x))

    def __init__(self):
        super().__init__()
        self.log_scale = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, weights, active=None):
        total = 0
        for e in range(weights.shape[0]):
            for o in range(weights.shape[1]) if active is None else (active[e],):
                total = total + weights[e, o] * self.maps[o](x)
        return self.log_scale.exp() * total / weights.shape[0]


@pytest.mark.parametrize("method", [DARTS(epochs=10, arch_lr=0.05), DARTS(epochs=10, arch_lr=0.05, order=2),
                                    GDAS(epochs=10, arch_lr=0.05, tau_max=5.0, tau_min=0.5)],
                         ids=["darts-1st", "darts-2nd", "gdas"])
def test_darts_and_gdas_find_the_one_operation_that_solves_a_toy_task(method):
    g = torch.Generator().manual_seed(0)
    model = Toy()
    alpha = method.init_alpha(g, torch.device("cpu"))
    w_opt, a_opt = method.weight_optimizer(model), method.arch_optimizer(alpha)

    def batch():
        x = torch.randn(32, 5, generator=g)
        return x, x.argmax(1)

    for epoch in range(method.epochs):
        for _ in range(20):
            method.step(model, alpha, w_opt, a_opt, batch(), batch(), method.learning_rate(epoch), epoch, g)
    assert method.derive(alpha).ops == ("skip_connect",) * 6
    assert (method.preferences(alpha).argmax(1) == OPERATIONS.index("skip_connect")).all()


def test_random_paths_are_uniform_over_the_operations_of_each_edge():
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(6, 5)
    for _ in range(5000):
        counts[range(6), uniform_path(g)] += 1
    assert (counts / 5000 - 0.2).abs().max() < 0.03
    assert RSPS().derive(None) is None and RSPS().init_alpha(g, torch.device("cpu")) is None


def test_method_options_are_checked_with_the_key_named():
    for bad, message in ((dict(order=3), "order"), (dict(lr=0), "lr"), (dict(arch_betas=[0.5]), "arch_betas"),
                         (dict(lr_min=1.0), "lr_min"), (dict(momentum=0, nesterov=True), "nesterov")):
        with pytest.raises(ValueError, match=message):
            DARTS(**bad)
    assert DARTS(arch_betas=[0.5, 0.999]).arch_betas == (0.5, 0.999)
    assert F.softmax(torch.zeros(1), 0).item() == 1.0
