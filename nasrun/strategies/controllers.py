"""REINFORCE controllers: policies over a space's decisions (its `choices` in order). A decision is either a
categorical over a dimension's options (`plan` entry: the number of options) or, in the macro space, a skip
connection from an earlier layer j into layer i (`plan` entry: the pair (i, j)). Each controller offers
`sample(rng, n) -> actions` (one index per decision, for the first n decisions: progressive depth asks for
fewer layers) and `log_prob(actions) -> (log p, entropy)` as torch scalars with gradients, so the strategy
can score any architecture, asked or not, under the current parameters.

- `Factorized`: one independent categorical per decision (NAS-Bench-201's REINFORCE baseline).
- `LSTMController` (Zoph & Le 2017): an LSTM emits a softmax per decision and reads the sampled token back as
  its next input, so later decisions depend on earlier ones. Skip connections use their anchor attention:
  layer i's anchor is the LSTM's output at an extra step, and P(j -> i) = sigmoid(v . tanh(W_prev a_j +
  W_curr a_i)) for every earlier anchor a_j (a learned anchor stands for the image).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class Factorized(nn.Module):
    def __init__(self, plan: list, generator: torch.Generator):
        super().__init__()
        sizes = [2 if isinstance(item, tuple) else item for item in plan]
        # NAS-Bench-201 starts from near-uniform logits: 1e-3 times a standard normal.
        self.logits = nn.ParameterList(nn.Parameter(1e-3 * torch.randn(n, generator=generator)) for n in sizes)

    def sample(self, rng: np.random.Generator, n: int | None = None) -> list[int]:
        with torch.no_grad():
            return [_draw(rng, torch.log_softmax(logits, dim=0)) for logits in list(self.logits)[:n]]

    def log_prob(self, actions: list[int]):
        return _score([torch.log_softmax(logits, dim=0) for logits in self.logits], actions)


class LSTMController(nn.Module):
    """hidden: units per layer (Zoph & Le: 35). layers: stacked LSTM layers (2). anchors: decision index -> layer
    i, for the decision after which layer i's anchor step is taken (the macro space's; none elsewhere)."""

    def __init__(self, plan: list, generator: torch.Generator, hidden: int = 35, layers: int = 2,
                 anchors: dict[int, int] | None = None):
        super().__init__()
        self.plan = list(plan)
        self.anchor_after = dict(anchors or {})
        categorical = {str(t): n for t, n in enumerate(self.plan) if not isinstance(n, tuple)}
        with torch.random.fork_rng(devices=[]):  # initialise from the strategy's seed, not torch's global state
            torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=generator)))
            self.lstm = nn.LSTM(hidden, hidden, num_layers=layers)
            self.start = nn.Parameter(torch.zeros(1, 1, hidden))
            self.embeddings = nn.ModuleDict({t: nn.Embedding(n, hidden) for t, n in categorical.items()})
            self.heads = nn.ModuleDict({t: nn.Linear(hidden, n) for t, n in categorical.items()})
            self.image_anchor = nn.Parameter(torch.zeros(hidden))
            self.w_prev = nn.Linear(hidden, hidden, bias=False)
            self.w_curr = nn.Linear(hidden, hidden, bias=False)
            self.v = nn.Parameter(torch.zeros(hidden))
            for p in self.parameters():
                nn.init.uniform_(p, -0.1, 0.1)  # Zoph & Le initialise the controller uniformly in [-0.1, 0.1]

    def sample(self, rng: np.random.Generator, n: int | None = None) -> list[int]:
        with torch.no_grad():
            return self._run(self.plan[:n], rng=rng)[0]

    def log_prob(self, actions: list[int]):
        _, log_probs = self._run(self.plan[:len(actions)], actions=actions)
        return _score(log_probs, actions)

    def _run(self, plan, rng=None, actions=None):
        """Walk the decisions, drawing each from `rng` or following `actions`; (actions, log-probabilities).

        Log-probabilities throughout (log_softmax, logsigmoid): a confident policy's probabilities round to 0 in
        float32, whose log is -inf and whose gradient turns every parameter into NaN."""
        x, state, anchors = self.start, None, {0: self.image_anchor}
        taken, log_probs = [], []
        for t, item in enumerate(plan):
            if isinstance(item, tuple):  # a skip connection j -> i, from the anchors of both layers
                i, j = item
                z = self.v @ torch.tanh(self.w_prev(anchors[j]) + self.w_curr(anchors[i]))
                p = torch.stack([nn.functional.logsigmoid(-z), nn.functional.logsigmoid(z)])  # log(1 - σ), log σ
            else:
                out, state = self.lstm(x, state)
                p = torch.log_softmax(self.heads[str(t)](out[0, 0]), dim=0)
            action = actions[t] if actions is not None else _draw(rng, p)
            if not isinstance(item, tuple):  # the sampled token is the next step's input
                x = self.embeddings[str(t)](torch.tensor([action])).view(1, 1, -1)
            if t in self.anchor_after:  # layer i's own choices are made: its anchor is the next step's output
                out, state = self.lstm(x, state)
                anchors[self.anchor_after[t]] = out[0, 0]
                x = out
            taken.append(action)
            log_probs.append(p)
        return taken, log_probs


def _score(log_probs, actions):
    """(summed log-probability of the actions, summed entropy of their decisions)."""
    log_probs = log_probs[:len(actions)]
    log_p = sum(lp[a] for lp, a in zip(log_probs, actions))
    entropy = sum(-(lp.exp() * lp).sum() for lp in log_probs)
    return log_p, entropy


def _draw(rng: np.random.Generator, log_p) -> int:
    p = log_p.detach().double().exp().numpy()
    return int(rng.choice(len(p), p=p / p.sum()))
