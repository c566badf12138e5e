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


def layer_distances(a: tuple[int, ...], others: list[tuple[int, ...]]) -> np.ndarray:
    """D_l from `a` to each of `others` at once: the dynamic programme runs row by row over a's layers, each
    row vectorised over every column of every other sequence (right-padded to the longest). Within a row,
    cost[j] = min(diagonal-or-above[j], cost[j-1] + 1), which unrolls to a running minimum of t[k] + (j - k);
    padding never reaches a sequence's own last column, because the programme only flows rightwards."""
    lengths = np.array([len(b) for b in others])
    width = int(lengths.max(initial=0))
    b = np.ones((len(others), width))  # pad with width 1: any value works, it is never read back
    for r, seq in enumerate(others):
        b[r, :len(seq)] = seq
    columns = np.arange(width + 1, dtype=float)
    row = np.broadcast_to(columns, (len(others), width + 1)).copy()
    for i, wa in enumerate(a, start=1):
        substitute = np.abs(b - wa) / np.maximum(b, wa)
        best = np.empty_like(row)
        best[:, 0] = i
        best[:, 1:] = np.minimum(row[:, 1:] + 1, row[:, :-1] + substitute)
        row = np.minimum.accumulate(best - columns, axis=1) + columns
    return row[np.arange(len(others)), lengths]


def skip_distances(a: tuple, others: list[tuple]) -> np.ndarray:
    """D_s from skip set `a` to each of `others`: the optimal matching. Matching two connections costs at most
    1 and leaving both unmatched costs 2, so some optimal matching pairs as many as it can: a rectangular
    assignment plus one per connection left over. The cost matrices against every other set are built in
    one array operation (the sets right-padded to the largest); only the assignments run one by one, once
    per distinct set."""
    from scipy.optimize import linear_sum_assignment

    distinct = list(dict.fromkeys(others))
    found = {}
    longest = max((len(b) for b in distinct), default=0)
    if a and longest:
        x = np.array([(k == "add", u, d) for k, u, d in a], dtype=float)  # (n, 3)
        y = np.zeros((len(distinct), longest, 3))
        for r, b in enumerate(distinct):
            if b:
                y[r, :len(b)] = [(k == "add", u, d) for k, u, d in b]
        x, y = x[None, :, None, :], y[:, None, :, :]  # (1, n, 1, 3) against (R, 1, M, 3)
        scale = np.maximum(x[..., 1], y[..., 1]) + np.maximum(x[..., 2], y[..., 2])
        gap = np.abs(x[..., 1] - y[..., 1]) + np.abs(x[..., 2] - y[..., 2])
        cost = np.where(x[..., 0] != y[..., 0], 1.0, gap / np.maximum(scale, 1))  # (R, n, M)
    for r, b in enumerate(distinct):
        if not a or not b:
            found[b] = float(len(a) + len(b))
            continue
        c = cost[r, :, :len(b)]
        rows, cols = linear_sum_assignment(c)
        found[b] = float(c[rows, cols].sum()) + abs(len(a) - len(b))
    return np.array([found[b] for b in others], dtype=float)


def distance_matrix(rows: list, columns: list, skip_weight: float = 1.0) -> np.ndarray:
    """d(x, y) for every x in `rows` and y in `columns` (exactly 0 for equal networks: their layer and skip
    sequences are identical)."""
    out = np.zeros((len(rows), len(columns)))
    if not rows or not columns:
        return out
    column_parts = [layers_and_skips(y) for y in columns]
    column_layers = [layers for layers, _ in column_parts]
    column_skips = [skips for _, skips in column_parts]
    for i, x in enumerate(rows):
        layers, skips = layers_and_skips(x)
        out[i] = layer_distances(layers, column_layers)
        out[i] += skip_weight * skip_distances(skips, column_skips)
    return out
