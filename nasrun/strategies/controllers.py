"""REINFORCE controllers: policies over a space's decisions (its `choices`, one categorical per dimension, in
order). Each offers `sample(rng) -> actions` (one index per decision) and `log_prob(actions) -> (log p,
entropy)` as torch scalars with gradients, so the strategy can compute the loss of any architecture, asked or
not, under the current parameters.

- `Factorized`: one independent categorical per decision (NAS-Bench-201's REINFORCE baseline).
- `LSTMController` (Zoph & Le 2017): an LSTM emits a softmax per decision, and each sampled token is fed back as
  the next step's input, so later decisions depend on earlier ones.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class Factorized(nn.Module):
    def __init__(self, sizes: list[int], generator: torch.Generator):
        super().__init__()
        # NAS-Bench-201 starts from near-uniform logits: 1e-3 times a standard normal.
        self.logits = nn.ParameterList(nn.Parameter(1e-3 * torch.randn(n, generator=generator)) for n in sizes)

    def distributions(self, actions=None):
        """The probability vector of every decision (the factorised policy ignores earlier actions)."""
        return [torch.softmax(logits, dim=0) for logits in self.logits]

    def sample(self, rng: np.random.Generator) -> list[int]:
        with torch.no_grad():
            return [int(rng.choice(len(p), p=_normalised(p))) for p in self.distributions()]

    def log_prob(self, actions: list[int]):
        return _score(self.distributions(actions), actions)


class LSTMController(nn.Module):
    """hidden: units per layer (Zoph & Le: 35). layers: stacked LSTM layers (2). Step t reads the embedding of
    action t-1 (a learned start token first) and its decision's own head gives that decision's logits."""

    def __init__(self, sizes: list[int], generator: torch.Generator, hidden: int = 35, layers: int = 2):
        super().__init__()
        with torch.random.fork_rng(devices=[]):  # initialise from the strategy's seed, not torch's global state
            torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=generator)))
            self.lstm = nn.LSTM(hidden, hidden, num_layers=layers)
            self.start = nn.Parameter(torch.zeros(1, 1, hidden))
            self.embeddings = nn.ModuleList(nn.Embedding(n, hidden) for n in sizes)
            self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in sizes)
            for p in self.parameters():
                nn.init.uniform_(p, -0.1, 0.1)  # Zoph & Le initialise the controller uniformly in [-0.1, 0.1]

    def _step(self, x, state):
        out, state = self.lstm(x, state)
        return out[0, 0], state

    def distributions(self, actions):
        """Every decision's probabilities given the actions before it (teacher forcing)."""
        x, state, probs = self.start, None, []
        for t, head in enumerate(self.heads):
            h, state = self._step(x, state)
            probs.append(torch.softmax(head(h), dim=0))
            x = self.embeddings[t](torch.tensor([actions[t]])).view(1, 1, -1)
        return probs

    def sample(self, rng: np.random.Generator) -> list[int]:
        actions, x, state = [], self.start, None
        with torch.no_grad():
            for t, head in enumerate(self.heads):
                h, state = self._step(x, state)
                p = torch.softmax(head(h), dim=0)
                actions.append(int(rng.choice(len(p), p=_normalised(p))))
                x = self.embeddings[t](torch.tensor([actions[-1]])).view(1, 1, -1)
        return actions

    def log_prob(self, actions: list[int]):
        return _score(self.distributions(actions), actions)


def _score(probs, actions):
    """(summed log-probability of the actions, summed entropy of the decisions)."""
    log_p = sum(torch.log(p[a]) for p, a in zip(probs, actions))
    entropy = sum(-(p * torch.log(p)).sum() for p in probs)
    return log_p, entropy


def _normalised(p) -> np.ndarray:
    """float64 probabilities summing to 1 exactly enough for numpy's choice."""
    p = p.detach().double().numpy()
    return p / p.sum()
