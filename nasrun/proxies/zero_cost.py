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
import math
import time
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasrun.checks import check_bool, check_float

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


GRADIENT_PROXIES = ("grad_norm", "snip", "grasp", "fisher", "jacob_cov")  # share one forward pass

# GraSP's finite-difference step, relative to the weights: H θ ≈ (∇L(θ(1+STEP)) − ∇L(θ)) / STEP. Chosen by
# measuring against the double backward on NAS-Bench-201 cells (README, "GraSP without the double backward"):
# the error falls with the step down to 3e-4 (median 0.3 %), below which float32 rounding takes over.
GRASP_STEP = 3e-4


def check_options(options: dict) -> None:
    """The gradient proxies' options (jacob_cov's eps, grasp's exact and step) as a config sets them, checked
    before any cell is scored: a bad one would otherwise fail every cell's score one by one."""
    if "eps" in options:
        check_float("proxy.eps", options["eps"], low=0.0, low_open=True)
    if "exact" in options:
        check_bool("proxy.exact", options["exact"])
    if "step" in options:
        check_float("proxy.step", options["step"], low=0.0, high=0.5, low_open=True)


def gradient_proxies(model: nn.Module, batch, names=GRADIENT_PROXIES, eps: float = 1e-5, exact: bool = False,
                     step: float = GRASP_STEP, seconds: dict | None = None) -> dict:
    """The gradient-based proxies in `names`, all from one forward pass over the batch: name -> score, or
    name -> the ValueError saying why that proxy has no score for this network. eps is jacob_cov's option;
    exact and step are grasp's (see `grasp`).

    One forward serves every proxy: jacob_cov backpropagates the summed outputs to the input; one backward of
    the cross-entropy gives the weight gradients (grad_norm, snip) and the activation gradients (fisher), and
    grasp's finite difference reuses them, so it costs one more forward and backward (exact=true keeps that
    backward differentiable and takes a double backward instead, about three times the cost). Asking for one
    proxy computes only what it needs.

    seconds: if given, filled with where the time went: "shared" (copying the model, the forward pass and the
    cross-entropy backward, which every proxy asked for needs) and each proxy's own work apart from it.
    """
    unknown = set(names) - set(GRADIENT_PROXIES)
    if unknown:
        raise KeyError(f"not a gradient proxy: {sorted(unknown)}")
    clock = _Stopwatch(batch[0].device, seconds)
    net = _copy_for_scoring(model)
    x, y = batch
    # Not channels-last, though oneDNN's convolutions run a quarter faster on it: their rounding is coarser, and
    # GraSP's difference of two gradients magnifies it (README, "GraSP without the double backward").
    inputs = x.float().detach().clone().requires_grad_("jacob_cov" in names)
    layers = _weighted_layers(net)
    relus = _recording_relus(net) if "grasp" in names and not exact else []
    hooked: list[tuple[nn.Module, torch.Tensor]] = []  # (layer, its output) for each call, for fisher

    def keep(module, args, output):
        if output.requires_grad:
            hooked.append((module, output))

    handles = [m.register_forward_hook(keep) for m in layers] if "fisher" in names else []
    try:
        logits = net(inputs)
    finally:
        for h in handles:
            h.remove()
    clock.lap("shared")
    scores: dict = {}
    if "jacob_cov" in names:
        (jacobian,) = torch.autograd.grad(logits.sum(), inputs, retain_graph=True, allow_unused=True)
        scores["jacob_cov"] = ValueError("proxy jacob_cov: the output does not depend on the input") \
            if jacobian is None else _attempt("jacob_cov", _jacob_cov_score, jacobian, eps)
        clock.lap("jacob_cov")
    if not set(names) - {"jacob_cov"}:
        return scores
    weights = [cast(torch.Tensor, m.weight) for m in layers]
    hessian = "grasp" in names and exact
    outputs = [z for _, z in hooked]
    grads = torch.autograd.grad(F.cross_entropy(logits, y), weights + outputs, create_graph=hessian,
                                allow_unused=True)
    weight_grads, layer_grads = grads[:len(weights)], grads[len(weights):]
    pairs = [(w.detach(), g.detach()) for w, g in zip(weights, weight_grads) if g is not None]
    clock.lap("shared")
    if "grad_norm" in names:  # Σ over layers of ‖∂L/∂W‖₂
        scores["grad_norm"] = _attempt("grad_norm", lambda: sum(g.norm().item() for _, g in pairs))
        clock.lap("grad_norm")
    if "snip" in names:  # Σ |W ⊙ ∂L/∂W|
        scores["snip"] = _attempt("snip", lambda: sum((w * g).abs().sum().item() for w, g in pairs))
        clock.lap("snip")
    if "fisher" in names:
        scores["fisher"] = _attempt("fisher", _fisher_score, [m for m, _ in hooked], outputs, layer_grads)
        clock.lap("fisher")
    if "grasp" in names:
        if exact:
            scores["grasp"] = _attempt("grasp", _grasp_score, weights, weight_grads)
        else:
            scores["grasp"] = _attempt("grasp", _grasp_difference, net, inputs.detach(), y, layers, weight_grads, step,
                                       relus)
        clock.lap("grasp")
    return scores


class _Stopwatch:
    """Adds the seconds since the last lap to `seconds[name]` (a no-op when `seconds` is None); waits for the
    GPU first, or its queued work would be charged to whichever lap happens to synchronise."""

    def __init__(self, device, seconds: dict | None):
        self.device, self.seconds = device, seconds
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        if self.seconds is None:
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self.last
        self.last = now


def _attempt(name: str, compute, *args):
    """A proxy's finite score, or the ValueError that explains why there is none (kept per proxy, so one
    failing proxy does not cost the others their scores)."""
    try:
        return _finite(name, compute(*args))
    except (ValueError, ArithmeticError, torch.linalg.LinAlgError, np.linalg.LinAlgError) as err:
        return err if isinstance(err, ValueError) else ValueError(f"proxy {name}: {err}")


def _fisher_score(layers, outputs, grads) -> float:
    """Turner et al. 2020's channel saliency as the zero-cost-proxies reference computes `fisher`: per output
    channel of each conv/linear layer, 0.5 · mean over the batch of (Σ_spatial z ⊙ ∂L/∂z)²; the reference
    gives that value to every weight of the channel before summing, so each layer's channels count fan-in
    times (C_in/groups · k_h · k_w for a conv, in_features for a linear)."""
    total = 0.0
    for layer, z, g in zip(layers, outputs, grads):
        if g is None:
            continue
        z, g = z.detach(), g.detach()
        per_sample = (z * g).sum(dim=tuple(range(2, z.ndim))) if z.ndim > 2 else z * g  # (batch, channels)
        per_channel = 0.5 * per_sample.pow(2).mean(dim=0)
        total += per_channel.sum().item() * math.prod(layer.weight.shape[1:])
    return total


def _grasp_score(weights, grads) -> float:
    """Σ −W ⊙ (H g) (Wang et al. 2020, as the reference computes it): with g the detached gradient, the
    gradient of Σ (∂L/∂W · g) is H g."""
    z = sum((g * g.detach()).sum() for g in grads if g is not None and g.requires_grad)
    if not torch.is_tensor(z):
        return 0.0  # no weight reaches the loss (a cell of `none` edges): no curvature either
    hg = torch.autograd.grad(z, weights, allow_unused=True)
    return sum((-w.detach() * h).sum().item() for w, h in zip(weights, hg) if h is not None)


def _grasp_difference(net: nn.Module, x, y, layers, grads, step: float, relus: list) -> float:
    """Σ −W ⊙ (H g) without a double backward. Summed over the weights it is −θᵀ H g = −gᵀ (H θ) (H is
    symmetric), and H θ is the derivative of the gradient along θ: (∇L(θ(1+step)) − ∇L(θ)) / step, one more
    forward and backward at the scaled weights (same batch, BatchNorm on batch statistics) beside the gradient
    the shared pass already has. The scaled weights go in through `functional_call`, so the network's own
    weights are never written.

    Two traps. The ReLUs replay the shared pass's on/off pattern: the double backward takes a ReLU's second
    derivative as zero, but scaling θ moves some pre-activations across zero, and each such flip changes the
    gradient by a jump that does not shrink with the step (on NAS-Bench-201 cells it swamped the score, sign
    included). With the pattern held, the only nonlinearities left are smooth (BatchNorm, softmax), and the
    difference converges to the double backward's value. And a convolution followed by BatchNorm is
    scale-invariant: the loss does not move along its θ but its gradient does (∇L(cθ) = ∇L(θ)/c, so H θ = −g),
    which a difference of gradients captures and a difference of losses would not."""
    from torch.func import functional_call

    live = [(m, g) for m, g in zip(layers, grads) if g is not None]
    if not live:
        return 0.0  # no weight reaches the loss (a cell of `none` edges): no curvature either
    names = {id(m): name for name, m in net.named_modules()}
    scaled = {f"{names[id(m)]}.weight": m.weight.detach() * (1 + step) for m, _ in live}
    for w in scaled.values():
        w.requires_grad_(True)
    for relu in relus:
        relu.replay()
    loss = F.cross_entropy(functional_call(net, scaled, (x,)), y)
    for relu in relus:
        relu.check_replayed()
    moved = torch.autograd.grad(loss, list(scaled.values()), allow_unused=True)
    total = 0.0
    for (_, g), h in zip(live, moved):  # float64 sums: the terms cancel heavily
        g = g.detach()
        difference = -g if h is None else h - g  # exact in float32 where h and g are close (Sterbenz)
        total -= (difference.double() * g.double()).sum().item() / step
    return total


class _RecordedReLU(nn.Module):
    """A ReLU that records which inputs were positive on each call, then can replay those patterns: the
    scaled pass of `_grasp_difference` goes through the same linear pieces as the shared pass."""

    def __init__(self) -> None:
        super().__init__()
        self.patterns: list[torch.Tensor] = []
        self.replaying: list[torch.Tensor] | None = None

    def forward(self, x):
        if self.replaying is None:
            self.patterns.append((x > 0).to(x.dtype))  # as a factor of the input's type: no casts on replay
            return F.relu(x)
        if not self.replaying:
            raise ValueError("proxy grasp: the network called a ReLU more often at the scaled weights than at the "
                             "weights themselves; use proxy.proxy.exact=true for it")
        return x * self.replaying.pop(0)

    def replay(self) -> None:
        self.replaying = list(self.patterns)

    def check_replayed(self) -> None:
        if self.replaying:
            raise ValueError("proxy grasp: the network called a ReLU less often at the scaled weights than at the "
                             "weights themselves; use proxy.proxy.exact=true for it")


def _recording_relus(net: nn.Module) -> list[_RecordedReLU]:
    """Replace every nn.ReLU module of `net` (a private copy) by a `_RecordedReLU`, which computes the same."""
    made = []
    for module in list(net.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.ReLU):
                made.append(_RecordedReLU())
                setattr(module, name, made[-1])
    return made


def _jacob_cov_score(jacobian, eps: float) -> float:
    """Mellor et al.'s Jacobian covariance in the reference code's form: per sample, the input gradient of the
    summed outputs; C its correlation matrix over the batch, λ C's eigenvalues; −Σ [log(λ + ε) + 1/(λ + ε)]."""
    rows = jacobian.reshape(len(jacobian), -1).double().cpu().numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(rows)
    if not np.all(np.isfinite(corr)):
        raise ValueError("proxy jacob_cov: a sample's input gradient is constant, so its correlation is undefined")
    eigenvalues = np.linalg.eigvalsh(corr)  # the correlation matrix is symmetric: real eigenvalues
    return -np.sum(np.log(eigenvalues + eps) + 1.0 / (eigenvalues + eps))


def _one(name: str, model: nn.Module, batch, **options) -> float:
    score = gradient_proxies(model, batch, (name,), **options)[name]
    if isinstance(score, ValueError):
        raise score
    return score


def grad_norm(model: nn.Module, batch) -> float:
    """Σ over layers of ‖∂L/∂W‖₂, L the cross-entropy on the batch."""
    return _one("grad_norm", model, batch)


def snip(model: nn.Module, batch) -> float:
    """Σ |W ⊙ ∂L/∂W| (Lee et al. 2019's connection sensitivity)."""
    return _one("snip", model, batch)


def grasp(model: nn.Module, batch, exact: bool = False, step: float = GRASP_STEP) -> float:
    """Σ −W ⊙ (H g), g = ∂L/∂W (Wang et al. 2020). exact=False (default): its sum −gᵀ(H θ) with H θ by a forward
    difference of the gradient along the weights, relative step `step` (one more forward and backward);
    exact=True: H g by double backpropagation, the reference's way (about three times slower on a CPU)."""
    return _one("grasp", model, batch, exact=exact, step=step)


def fisher(model: nn.Module, batch) -> float:
    """Σ over conv/linear layers and their output channels of fan-in · 0.5 · mean over the batch of
    (Σ_spatial z ⊙ ∂L/∂z)², z the layer's output (the reference implementation's definition)."""
    return _one("fisher", model, batch)


def jacob_cov(model: nn.Module, batch, eps: float = 1e-5) -> float:
    """−Σ [log(λ + ε) + 1/(λ + ε)], λ the eigenvalues of the correlation of per-sample input gradients."""
    return _one("jacob_cov", model, batch, eps=eps)


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
    total = math.fsum(float((m.weight * m.weight.grad).abs().sum().item())  # type: ignore[operator]
                      for m in _weighted_layers(net) if m.weight.grad is not None)
    return _finite("synflow", total)


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
    """Baseline: the FLOPs of one input image as NAS-Bench-201's profiler counts them (`get_model_infos`):
    multiply-accumulates of every conv and linear layer, plus one add per output element for a bias. Its
    profiler hooks pooling layers too but leaves them out of the sum; so does this."""
    x, _ = batch
    net = copy.deepcopy(model).eval()
    total = [0]

    def count(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total[0] += output[0].numel() * (per_output + (module.bias is not None))
        else:
            total[0] += module.out_features * (module.in_features + (module.bias is not None))

    handles = [m.register_forward_hook(count) for m in _weighted_layers(net)]
    try:
        with torch.no_grad():
            net(x[:1].float())
    finally:
        for h in handles:
            h.remove()
    return float(total[0])
