"""Zero-cost proxies: score an untrained network from one minibatch, higher = better.

Each proxy is a plain function `score(model, batch) -> float` (batch = (images, labels)), following the
definitions of Abdelfattah et al. 2021 ("Zero-cost proxies for lightweight NAS") and, for naswot, Mellor et
al. 2021. Every proxy works on a private copy of the model, so the caller's weights, gradients and train/eval
mode are untouched, and any device works. The copy runs in training mode (BatchNorm on batch statistics, as in
the reference code) with dropout switched off, so a score is a deterministic function of weights and batch.

Scores are sums of per-weight or per-channel terms over the network's convolution and linear layers. A proxy
that cannot give a finite score (a singular correlation matrix, a synflow overflow) raises ValueError; the
runner turns that into a failed trial, never a crashed search or a NaN in a ranking.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

WEIGHTED = (nn.Conv2d, nn.Linear)


def _copy_for_scoring(model: nn.Module) -> nn.Module:
    net = copy.deepcopy(model)
    net.train()
    for m in net.modules():
        if isinstance(m, nn.Dropout):
            m.eval()
    net.zero_grad(set_to_none=True)
    return net


def _weighted_layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, WEIGHTED)]


def _finite(name: str, value: float) -> float:
    if not np.isfinite(value):
        raise ValueError(f"proxy {name} gave a non-finite score ({value})")
    return float(value)


def _backward_loss(net: nn.Module, batch) -> None:
    x, y = batch
    F.cross_entropy(net(x.float()), y).backward()


def grad_norm(model: nn.Module, batch) -> float:
    """Σ over layers of ‖∂L/∂W‖₂, L the cross-entropy on the batch."""
    net = _copy_for_scoring(model)
    _backward_loss(net, batch)
    total = sum(m.weight.grad.norm().item() for m in _weighted_layers(net) if m.weight.grad is not None)
    return _finite("grad_norm", total)


def snip(model: nn.Module, batch) -> float:
    """Σ |W ⊙ ∂L/∂W| (Lee et al. 2019's connection sensitivity)."""
    net = _copy_for_scoring(model)
    _backward_loss(net, batch)
    total = sum((m.weight * m.weight.grad).abs().sum().item() for m in _weighted_layers(net)
                if m.weight.grad is not None)
    return _finite("snip", total)


def grasp(model: nn.Module, batch) -> float:
    """Σ −W ⊙ (H g): g = ∂L/∂W, H g by double backpropagation (Wang et al. 2020, as the reference computes it).
    One forward pass serves both: the gradient is taken with its graph kept, g is its detached value, and the
    gradient of Σ (∂L/∂W · g) is H g."""
    net = _copy_for_scoring(model)
    x, y = batch
    weights = [m.weight for m in _weighted_layers(net)]
    grads = torch.autograd.grad(F.cross_entropy(net(x.float()), y), weights, create_graph=True, allow_unused=True)
    z = sum((gi * gi.detach()).sum() for gi in grads if gi is not None and gi.requires_grad)
    if not torch.is_tensor(z):
        return 0.0  # no weight reaches the loss (a cell of `none` edges): no curvature either
    hg = torch.autograd.grad(z, weights, allow_unused=True)
    total = sum((-w.detach() * h).sum().item() for w, h in zip(weights, hg) if h is not None)
    return _finite("grasp", total)


def fisher(model: nn.Module, batch) -> float:
    """Per channel of each conv/linear output z: (Σ_spatial z ⊙ ∂L/∂z)², summed over the batch, the channels
    and the layers (Turner et al. 2020's channel saliency)."""
    net = _copy_for_scoring(model)
    saved = []

    def keep(module, inputs, output):
        if output.requires_grad:
            output.retain_grad()
            saved.append(output)

    handles = [m.register_forward_hook(keep) for m in _weighted_layers(net)]
    try:
        _backward_loss(net, batch)
    finally:
        for h in handles:
            h.remove()
    total = 0.0
    for z in saved:
        if z.grad is None:
            continue
        per_channel = (z * z.grad).sum(dim=tuple(range(2, z.ndim))) if z.ndim > 2 else z * z.grad
        total += per_channel.pow(2).sum().item()
    return _finite("fisher", total)


def _without_batchnorm(net: nn.Module) -> None:
    for name, child in list(net.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(net, name, nn.Identity())
        else:
            _without_batchnorm(child)


def synflow(model: nn.Module, batch) -> float:
    """Tanaka et al. 2020: every weight replaced by its absolute value, BatchNorm bypassed, float64, an
    all-ones input of one sample; R = Σ output; score Σ |W ⊙ ∂R/∂W|. Float64 holds the published range
    (1e32 to 1e61); a network that overflows even that raises ValueError rather than ranking as inf."""
    x, _ = batch
    net = _copy_for_scoring(model)
    _without_batchnorm(net)
    net.double()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    net(ones).sum().backward()
    total = sum((m.weight * m.weight.grad).abs().sum().item() for m in _weighted_layers(net)
                if m.weight.grad is not None)
    return _finite("synflow", total)


def jacob_cov(model: nn.Module, batch, eps: float = 1e-5) -> float:
    """Mellor et al.'s Jacobian covariance in the reference code's form: J holds, per sample, the gradient of
    the summed outputs w.r.t. the input; C its correlation matrix over the batch, λ C's eigenvalues; score
    −Σ [log(λ + ε) + 1/(λ + ε)]."""
    x, _ = batch
    net = _copy_for_scoring(model)
    inputs = x.float().detach().clone().requires_grad_(True)
    net(inputs).sum().backward()
    jacobian = inputs.grad.reshape(len(inputs), -1).double().cpu().numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(jacobian)
    if not np.all(np.isfinite(corr)):
        raise ValueError("proxy jacob_cov: a sample's input gradient is constant, so its correlation is undefined")
    eigenvalues = np.linalg.eigvalsh(corr)  # the correlation matrix is symmetric: real eigenvalues
    return _finite("jacob_cov", -np.sum(np.log(eigenvalues + eps) + 1.0 / (eigenvalues + eps)))


def naswot(model: nn.Module, batch) -> float:
    """Mellor et al. 2021: each sample's binary code of which ReLU inputs are positive; K = C Cᵀ + (1−C)(1−C)ᵀ
    summed over the ReLU layers (Hamming agreement between samples); score log|det K|."""
    x, _ = batch
    net = _copy_for_scoring(model)
    n = len(x)
    kernel = torch.zeros((n, n), dtype=torch.float64, device=x.device)

    def accumulate(module, inputs):
        codes = (inputs[0].detach().reshape(n, -1) > 0).double()
        kernel.add_(codes @ codes.T).add_((1 - codes) @ (1 - codes).T)

    handles = [m.register_forward_pre_hook(accumulate) for m in net.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            net(x.float())
    finally:
        for h in handles:
            h.remove()
    sign, logdet = torch.linalg.slogdet(kernel)
    if sign.item() == 0:
        raise ValueError("proxy naswot: the ReLU-code kernel is singular (two samples share every code)")
    return _finite("naswot", logdet.item())


def params(model: nn.Module, batch) -> float:
    """Baseline: the number of trainable parameters."""
    return float(sum(p.numel() for p in model.parameters() if p.requires_grad))


def flops(model: nn.Module, batch) -> float:
    """Baseline: multiply-accumulates of the conv and linear layers for one input image."""
    x, _ = batch
    net = copy.deepcopy(model).eval()
    total = [0]

    def count(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total[0] += output[0].numel() * per_output
        else:
            total[0] += module.in_features * module.out_features

    handles = [m.register_forward_hook(count) for m in _weighted_layers(net)]
    try:
        with torch.no_grad():
            net(x[:1].float())
    finally:
        for h in handles:
            h.remove()
    return float(total[0])
