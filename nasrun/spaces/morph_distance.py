"""Auto-Keras' edit distance between two morph networks: d = D_l(L_a, L_b) + λ D_s(S_a, S_b).

- Layers L are the convolutions in topological order, each with its width. D_l aligns the two sequences by
  dynamic programming: matching layers costs |w_a - w_b| / max(w_a, w_b), leaving one unmatched costs 1.
- Skip connections S are the inputs of adds and concatenations other than their main (latest) input, each as
  (u, δ): u the rank of its source among the convolutions seen so far, δ the convolutions it skips. D_s
  matches them optimally with the Hungarian algorithm (`scipy.optimize.linear_sum_assignment`):
  (|u_a - u_b| + |δ_a - δ_b|) / (max(u_a, u_b) + max(δ_a, δ_b)), or 1 when they are of different kinds (add
  against concatenation) or unmatched.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=65536)
def layers_and_skips(arch) -> tuple[tuple[int, ...], tuple[tuple[str, int, int], ...]]:
    """(conv widths in order, skips as (kind, u, δ)) of a MorphArch."""
    rank = [0]  # convolutions up to and including each node
    widths = []
    skips = []
    for n in arch.nodes:
        if n.op == "conv":
            widths.append(n.width)
        if n.op in ("add", "concat"):
            main = max(n.inputs)
            for j in n.inputs:
                if j != main:
                    source = _source(arch, j)
                    skips.append((n.op, rank[source], rank[main] - rank[source]))
        rank.append(rank[-1] + (n.op == "conv"))
    return tuple(widths), tuple(skips)


def _source(arch, j: int) -> int:
    """A projection stands for the node it projects."""
    node = arch.nodes[j - 1] if j else None
    return node.inputs[0] if node is not None and node.op == "proj" else j


def layer_distance(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    cost = np.zeros((len(a) + 1, len(b) + 1))
    cost[:, 0] = np.arange(len(a) + 1)
    cost[0, :] = np.arange(len(b) + 1)
    for i, wa in enumerate(a, start=1):
        for j, wb in enumerate(b, start=1):
            cost[i, j] = min(cost[i - 1, j] + 1, cost[i, j - 1] + 1,
                             cost[i - 1, j - 1] + abs(wa - wb) / max(wa, wb))
    return float(cost[-1, -1])


def skip_cost(x: tuple[str, int, int], y: tuple[str, int, int]) -> float:
    if x[0] != y[0]:
        return 1.0
    scale = max(x[1], y[1]) + max(x[2], y[2])
    return 0.0 if scale == 0 else (abs(x[1] - y[1]) + abs(x[2] - y[2])) / scale


def skip_distance(a, b) -> float:
    """The optimal matching: a square cost matrix with a dummy partner (cost 1) for every connection."""
    from scipy.optimize import linear_sum_assignment

    n, m = len(a), len(b)
    if n == 0 or m == 0:
        return float(n + m)
    cost = np.ones((n + m, n + m))
    cost[:n, :m] = [[skip_cost(x, y) for y in b] for x in a]
    cost[n:, m:] = 0.0  # dummy against dummy: free
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].sum())


def edit_distance(a, b, skip_weight: float = 1.0) -> float:
    if a.key == b.key:
        return 0.0
    (la, sa), (lb, sb) = layers_and_skips(a), layers_and_skips(b)
    return layer_distance(la, lb) + skip_weight * skip_distance(sa, sb)
