"""REINFORCE (Williams 1992), the policy-gradient search of Zoph & Le (ICLR 2017, "Neural Architecture Search
with Reinforcement Learning"): a controller samples an architecture decision by decision, the trained child's
validation accuracy is the reward, and the update raises the log-probability of decisions that beat a moving
average of past rewards.

Parallel trials: each ask's actions are kept until its result comes back, in whatever order; the policy
updates once `batch_size` rewards have arrived, on their mean gradient. A result for an architecture it never
asked for (a resume that no longer retraces its log) is scored under the current policy like its own samples.
A failed trial gives no reward and no update.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from nasrun.checks import check_choice, check_float, check_int
from nasrun.contracts import anchor_steps, is_layered, skip_decisions

CONTROLLERS = ("factorized", "lstm")
REWARDS = ("identity", "cube")


class Reinforce:
    """controller: factorized | lstm. lr: Adam's learning rate. baseline_decay: momentum of the (bias-corrected)
    moving-average baseline. entropy_weight: bonus on the policy's entropy (0: none). batch_size: rewards per
    update. reward: identity | cube (Zoph & Le cube the accuracy, as a fraction, to sharpen the signal). hidden,
    layers: the LSTM controller's size (Zoph & Le: 35 units, 2 layers).
    start_layers, layers_step, step_every: progressive depth on a layered space (space=macro): the first
    `step_every` children have `start_layers` layers, the next `step_every` `layers_step` more, and so on up
    to the space's num_layers (null start_layers: always the full depth)."""

    def __init__(self, space, seed: int, controller: str = "lstm", lr: float = 6e-4, baseline_decay: float = 0.95,
                 entropy_weight: float = 0.0, batch_size: int = 1, reward: str = "identity", hidden: int = 35,
                 layers: int = 2, start_layers: int | None = None, layers_step: int = 1, step_every: int = 16):
        import torch

        from nasrun.strategies.controllers import Factorized, LSTMController  # torch: on build, not on import

        self.space = space
        check_choice("controller", controller, CONTROLLERS)
        if not space.choices:  # space=morph grows networks by morphisms: there is nothing for a policy to choose
            raise ValueError(f"controller={controller}: REINFORCE samples a space's named choices and "
                             f"space={space.name} has none; use strategy=bayesian, evolution or random on it")
        lr = check_float("lr", lr, low=0.0, low_open=True)
        self.baseline_decay = check_float("baseline_decay", baseline_decay, low=0.0, high=1.0, high_open=True)
        self.entropy_weight = check_float("entropy_weight", entropy_weight, low=0.0)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.reward_name = check_choice("reward", reward, REWARDS)
        self.dims = list(space.choices)
        skips = skip_decisions(space)  # the macro space's skip connections: attention, not a softmax
        plan = [skips.get(d, len(space.choices[d])) for d in self.dims]
        self.start_layers = self._depth_schedule(space, start_layers, layers_step, step_every)
        generator = torch.Generator().manual_seed(seed)
        if controller == "lstm":
            layer_done = anchor_steps(space)  # decision -> layer whose anchor step follows it
            anchors = {t: layer_done[d] for t, d in enumerate(self.dims) if d in layer_done}
            self.controller: LSTMController | Factorized = LSTMController(
                plan, generator, check_int("hidden", hidden, low=1), check_int("layers", layers, low=1), anchors)
        else:
            self.controller = Factorized(plan, generator)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=lr)
        self.rng = np.random.default_rng(seed)
        self.asked: dict[str, list] = defaultdict(list)  # key -> actions of asks not yet told, oldest first
        self._numerator = self._denominator = 0.0  # the moving average, bias-corrected as NAS-Bench-201's
        self._losses: list = []  # the losses since the last update (tensors)
        self.children = 0  # asks so far: the progressive depth schedule counts them

    def _depth_schedule(self, space, start_layers, layers_step, step_every) -> int | None:
        if start_layers is None:
            return None
        if not is_layered(space):
            raise ValueError(f"start_layers={start_layers}: progressive depth needs a layered space (space=macro); "
                             f"set strategy.start_layers=null")
        self.layers_step = check_int("layers_step", layers_step, low=1)
        self.step_every = check_int("step_every", step_every, low=1)
        return check_int("start_layers", start_layers, low=1, high=space.num_layers)

    def depth(self, child: int) -> int | None:
        """Layers of the `child`-th ask under progressive depth (None: the space's full depth)."""
        if self.start_layers is None:
            return None
        return min(self.space.num_layers, self.start_layers + self.layers_step * (child // self.step_every))

    def ask(self):
        depth = self.depth(self.children)
        self.children += 1
        decisions = None if depth is None else len(self.space.layer_dims(depth))
        actions = self.controller.sample(self.rng, decisions)
        arch = self.space.make({d: self.space.choices[d][a] for d, a in zip(self.dims, actions)})
        self.asked[arch.key].append(actions)
        return arch

    def tell(self, arch, fitness: float | None) -> None:
        pending = self.asked.get(arch.key)
        actions = pending.pop(0) if pending else self._actions_of(arch)
        if pending == []:
            del self.asked[arch.key]
        if fitness is None:
            return
        reward = self._reward(float(fitness))
        self._numerator = self.baseline_decay * self._numerator + (1 - self.baseline_decay) * reward
        self._denominator = self.baseline_decay * self._denominator + (1 - self.baseline_decay)
        advantage = reward - self.baseline
        log_p, entropy = self.controller.log_prob(actions)
        self._losses.append(-log_p * advantage - self.entropy_weight * entropy)
        if len(self._losses) >= self.batch_size:
            self.optimizer.zero_grad()
            (sum(self._losses) / len(self._losses)).backward()
            self.optimizer.step()
            self._losses = []

    @property
    def baseline(self) -> float:
        return self._numerator / self._denominator if self._denominator else 0.0

    def probability(self, arch) -> float:
        """The current policy's probability of proposing `arch` (for tests and diagnostics)."""
        import torch

        with torch.no_grad():
            return float(torch.exp(self.controller.log_prob(self._actions_of(arch))[0]))

    def _reward(self, fitness: float) -> float:
        return (fitness / 100.0) ** 3 if self.reward_name == "cube" else fitness

    def _actions_of(self, arch) -> list[int]:
        """The decisions that give `arch` (a shallower network: those of its layers, a prefix)."""
        values = arch.choices()
        return [self.space.choices[d].index(values[d]) for d in self.dims if d in values]
