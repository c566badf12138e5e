"""How a supernet is trained: the `oneshot` config group's options, one class each (the constructor is the
schema, the step is the algorithm).

- `DARTS` (Liu et al. 2019): a softmax over the architecture parameters α weighs every operation of every
  edge; α and the weights take turns, α on the second half of the training set. `order: 2` is the unrolled
  (second-order) update, whose Hessian-vector product is a central finite difference with r = 1e-2, as in the
  reference code.
- `GDAS` (Dong & Yang 2019): one operation per edge drawn by Gumbel-softmax, run alone in the forward pass
  (hard one-hot), with the straight-through estimator carrying the soft sample's gradient to α; the
  temperature falls linearly from `tau_max` to `tau_min` over the epochs.
- `RSPS` (Li & Talwalkar 2019): each step trains one uniformly drawn path; no α. Cells are chosen afterwards by
  a search whose evaluator scores them on the trained supernet (`nasrun.oneshot.evaluator`).

The weights train with SGD (Nesterov momentum, weight decay, gradient clipping), the learning rate
cosine-annealed per epoch from `lr` to `lr_min`; α with Adam. Defaults are NAS-Bench-201's protocol. Every
random draw (α's initialisation, Gumbel noise, paths) comes from the generator the training loop hands in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nasrun.checks import check_bool, check_choice, check_float, check_int
from nasrun.evaluators.tabular import BENCHMARKS
from nasrun.spaces.nb201 import EDGES, OPERATIONS, NB201Arch

MAX_RESAMPLES = 100  # Gumbel draws tried before a non-finite sample is an error (one in 2**24 draws is inf)


@dataclass(frozen=True)
class WeightTraining:
    """The supernet's weights: SGD with Nesterov momentum, cosine-annealed per epoch, clipped gradients."""

    epochs: int = 50
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    grad_clip: float = 5.0
    affine: bool = False  # learned BatchNorm scale and shift in the cells' operations (the reference: none)
    table: str | None = None  # the NAS-Bench-201 results table: derived cells get its accuracies
    benchmark: str = "cifar10"  # which of the table's datasets those accuracies are

    name = "supernet"
    has_alpha = False

    def __post_init__(self):
        check_int("epochs", self.epochs, low=1)
        check_float("lr", self.lr, low=0.0, low_open=True)
        check_float("lr_min", self.lr_min, low=0.0, high=self.lr)
        check_float("momentum", self.momentum, low=0.0, high=1.0)
        check_float("weight_decay", self.weight_decay, low=0.0)
        check_float("grad_clip", self.grad_clip, low=0.0, low_open=True)
        check_choice("benchmark", self.benchmark, BENCHMARKS)
        check_bool("affine", self.affine)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=true: needs momentum > 0")

    def learning_rate(self, epoch: int) -> float:
        """The weights' learning rate in epoch `epoch` (from 0): cosine from lr to lr_min, per epoch."""
        return self.lr_min + (self.lr - self.lr_min) * 0.5 * (1 + math.cos(math.pi * epoch / self.epochs))

    def weight_optimizer(self, model) -> torch.optim.Optimizer:
        return torch.optim.SGD(model.parameters(), lr=self.lr, momentum=self.momentum, nesterov=self.nesterov,
                               weight_decay=self.weight_decay)

    def weight_step(self, model, optimizer, x, y, weights, active=None) -> tuple[float, int]:
        """One SGD step of the weights on (x, y) through `weights` (and `active`); (loss, correct)."""
        optimizer.zero_grad(set_to_none=True)
        logits = model(x, weights, active)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip)
        optimizer.step()
        return loss.item(), int((logits.argmax(1) == y).sum())

    def step(self, model, alpha, w_opt, a_opt, train, arch, lr: float, epoch: int, generator) -> dict:
        """One step on a `train` batch (and an `arch` batch, for α): the loss and correct count of each."""
        raise NotImplementedError(f"{type(self).__name__} trains no supernet; use DARTS, GDAS or RSPS")

    def init_alpha(self, generator, device) -> torch.Tensor | None:
        return None

    def derive(self, alpha) -> NB201Arch | None:
        return None


@dataclass(frozen=True)
class ArchTraining(WeightTraining):
    """Weights as `WeightTraining`, and architecture parameters α (one row per edge) trained with Adam on the
    other half of the data."""

    arch_lr: float = 3e-4
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 1e-3

    has_alpha = True

    def __post_init__(self):
        super().__post_init__()
        check_float("arch_lr", self.arch_lr, low=0.0, low_open=True)
        betas = tuple(self.arch_betas)
        if len(betas) != 2:
            raise ValueError(f"arch_betas={list(betas)}: two numbers, e.g. [0.5, 0.999]")
        for beta in betas:
            check_float("arch_betas", beta, low=0.0, high=1.0)
        object.__setattr__(self, "arch_betas", betas)
        check_float("arch_weight_decay", self.arch_weight_decay, low=0.0)

    def init_alpha(self, generator, device) -> torch.Tensor:
        """1e-3 times standard normal noise, as the reference code starts α."""
        alpha = 1e-3 * torch.randn((len(EDGES), len(OPERATIONS)), generator=generator)
        return alpha.to(device).requires_grad_(True)

    def arch_optimizer(self, alpha) -> torch.optim.Optimizer:
        return torch.optim.Adam([alpha], lr=self.arch_lr, betas=self.arch_betas, weight_decay=self.arch_weight_decay)

    def derive(self, alpha) -> NB201Arch:
        """The cell of the argmax of α on every edge."""
        best = alpha.detach().argmax(dim=1).tolist()
        return NB201Arch(tuple(OPERATIONS[o] for o in best))

    def preferences(self, alpha) -> torch.Tensor:
        """Each edge's softmax over its operations."""
        return F.softmax(alpha.detach(), dim=1)


@dataclass(frozen=True)
class DARTS(ArchTraining):
    """Differentiable architecture search: every edge the α-softmax-weighted sum of its operations."""

    order: int = 1  # 1: α's gradient at the current weights; 2: through one virtual SGD step of the weights
    r: float = 1e-2  # the finite difference's step, relative to the gradient's norm (second order)

    name = "darts"

    def __post_init__(self):
        super().__post_init__()
        check_choice("order", self.order, (1, 2))
        check_float("r", self.r, low=0.0, low_open=True)

    def step(self, model, alpha, w_opt, a_opt, train, arch, lr, epoch, generator) -> dict:
        (x, y), (xa, ya) = train, arch
        if self.order == 2:  # the reference's DARTS-V2 updates α first, from the current weights
            def train_loss():
                return F.cross_entropy(model(x, F.softmax(alpha, dim=1)), y)

            def val_loss():
                return F.cross_entropy(model(xa, F.softmax(alpha, dim=1)), ya)

            a_opt.zero_grad(set_to_none=True)
            alpha.grad = unrolled_alpha_grad(list(model.parameters()), alpha, train_loss, val_loss, lr=lr,
                                             momentum=self.momentum, weight_decay=self.weight_decay,
                                             buffers=momentum_buffers(w_opt, model), r=self.r)
            a_opt.step()
        loss, correct = self.weight_step(model, w_opt, x, y, F.softmax(alpha.detach(), dim=1))
        arch_loss, arch_correct = float("nan"), 0
        with torch.no_grad() if self.order == 2 else torch.enable_grad():
            a_opt.zero_grad(set_to_none=True)
            logits = model(xa, F.softmax(alpha, dim=1))
            loss_a = F.cross_entropy(logits, ya)
            if self.order == 1:
                loss_a.backward()
                a_opt.step()
            arch_loss, arch_correct = loss_a.item(), int((logits.argmax(1) == ya).sum())
        return {"loss": loss, "correct": correct, "arch_loss": arch_loss, "arch_correct": arch_correct}


def momentum_buffers(optimizer, model) -> list:
    """SGD's momentum buffer of each parameter (None before its first step)."""
    return [optimizer.state.get(p, {}).get("momentum_buffer") for p in model.parameters()]


def unrolled_alpha_grad(params, alpha, train_loss, val_loss, *, lr, momentum, weight_decay, buffers, r):
    """DARTS's second-order gradient of the validation loss with respect to α:

        ∇α L_val(w', α) - lr · ∇²α,w L_train(w, α) · ∇w' L_val(w', α),   w' = w - lr (m·buffer + ∇w L_train + wd·w)

    the Hessian-vector product as (∇α L_train(w⁺, α) - ∇α L_train(w⁻, α)) / 2ε with w± = w ± ε ∇w' L_val and
    ε = r / ‖∇w' L_val‖. `train_loss()` and `val_loss()` compute the losses on fixed batches at the current
    parameters; the parameters are back where they were on return."""
    grads = torch.autograd.grad(train_loss(), params, allow_unused=True)
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p, g, buffer in zip(params, grads, buffers):
            step = (g if g is not None else torch.zeros_like(p)) + weight_decay * p
            if buffer is not None:
                step = step + momentum * buffer
            p.sub_(lr * step)
    *w_grads, alpha_grad = torch.autograd.grad(val_loss(), [*params, alpha], allow_unused=True)
    w_grads = [g if g is not None else torch.zeros_like(p) for g, p in zip(w_grads, params)]
    alpha_grad = alpha_grad if alpha_grad is not None else torch.zeros_like(alpha)
    norm = torch.sqrt(sum((g * g).sum() for g in w_grads))
    eps = r / norm.clamp_min(1e-12)
    sides = []
    for sign in (1.0, -1.0):
        with torch.no_grad():
            for p, s, g in zip(params, saved, w_grads):
                p.copy_(s + sign * eps * g)
        (side,) = torch.autograd.grad(train_loss(), [alpha])
        sides.append(side)
    with torch.no_grad():
        for p, s in zip(params, saved):
            p.copy_(s)
    return alpha_grad - lr * (sides[0] - sides[1]) / (2 * eps)


@dataclass(frozen=True)
class GDAS(ArchTraining):
    """Gradient-based search with a differentiable sampler: one Gumbel-softmax-drawn operation per edge."""

    epochs: int = 250
    tau_max: float = 10.0
    tau_min: float = 0.1

    name = "gdas"

    def __post_init__(self):
        super().__post_init__()
        check_float("tau_min", self.tau_min, low=0.0, low_open=True)
        check_float("tau_max", self.tau_max, low=self.tau_min)

    def tau(self, epoch: int) -> float:
        """The temperature of epoch `epoch` (from 0): tau_max in the first epoch, tau_min in the last."""
        if self.epochs == 1:
            return self.tau_max
        return self.tau_max - (self.tau_max - self.tau_min) * epoch / (self.epochs - 1)

    def step(self, model, alpha, w_opt, a_opt, train, arch, lr, epoch, generator) -> dict:
        (x, y), (xa, ya) = train, arch
        tau = self.tau(epoch)
        hard, active = gumbel_straight_through(alpha.detach(), tau, generator)
        loss, correct = self.weight_step(model, w_opt, x, y, hard.detach(), active)
        a_opt.zero_grad(set_to_none=True)
        hard, active = gumbel_straight_through(alpha, tau, generator)
        logits = model(xa, hard, active)
        arch_loss = F.cross_entropy(logits, ya)
        arch_loss.backward()
        a_opt.step()
        return {"loss": loss, "correct": correct, "arch_loss": arch_loss.item(),
                "arch_correct": int((logits.argmax(1) == ya).sum())}


def gumbel_straight_through(alpha, tau: float, generator) -> tuple[torch.Tensor, list[int]]:
    """(weights, chosen operation per edge): the one-hot of the Gumbel-softmax sample's argmax in the forward
    pass, the soft sample's gradient in the backward (straight-through). A draw whose noise or probabilities
    are not finite is drawn again, as the reference code does."""
    for _ in range(MAX_RESAMPLES):
        noise = -torch.empty(alpha.shape).exponential_(generator=generator).log().to(alpha.device)
        probs = F.softmax((F.log_softmax(alpha, dim=1) + noise) / tau, dim=1)
        if torch.isfinite(noise).all() and torch.isfinite(probs).all():
            break
    else:
        raise FloatingPointError(f"{MAX_RESAMPLES} Gumbel samples in a row were not finite (α has diverged)")
    index = probs.detach().argmax(dim=1)
    hard = torch.zeros_like(probs).scatter_(1, index[:, None], 1.0)
    return hard - probs.detach() + probs, index.tolist()


@dataclass(frozen=True)
class RSPS(WeightTraining):
    """Random search with parameter sharing: every step trains one path drawn uniformly, edge by edge."""

    name = "rsps"

    def step(self, model, alpha, w_opt, a_opt, train, arch, lr, epoch, generator) -> dict:
        x, y = train
        path = uniform_path(generator)
        weights = torch.zeros((len(EDGES), len(OPERATIONS)), device=x.device)
        weights[range(len(EDGES)), path] = 1.0
        loss, correct = self.weight_step(model, w_opt, x, y, weights, path)
        return {"loss": loss, "correct": correct, "path": path}


def uniform_path(generator) -> list[int]:
    """One operation index per edge, each uniform over the five."""
    return torch.randint(len(OPERATIONS), (len(EDGES),), generator=generator).tolist()
