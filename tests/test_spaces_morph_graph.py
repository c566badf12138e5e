"""space=morph's canonical key, tested as google-research/nasbench tests its graph hash: a graph keeps its key
under every renumbering, and on small random graphs two graphs share a key exactly when a brute-force search
finds an isomorphism between them."""

import itertools
from collections import Counter

import numpy as np
import pytest

from nasrun.spaces.morph.graph import Node, canonical, make, validate

# A small alphabet, so that random graphs often hold look-alike nodes: the ties the canonical order must break.
CONVS = [("conv", 3, 8), ("conv", 3, 8), ("conv", 1, 8), ("conv", 3, 16)]


def random_graph(rng: np.random.Generator, size: int) -> tuple[Node, ...] | None:
    """A random valid graph of `size` nodes (None when the draw is not valid): convolutions, adds and concats,
    with parallel twins made likely."""
    nodes: list[Node] = []
    for i in range(1, size + 1):
        kind = rng.choice(["conv", "conv", "add", "concat"]) if i > 2 else "conv"
        if kind == "conv":
            _, kernel, width = CONVS[int(rng.integers(len(CONVS)))]
            nodes.append(Node("conv", (int(rng.integers(i)),), width, kernel))
        else:
            count = min(i - 1, int(rng.integers(2, 4)))
            inputs = tuple(sorted(int(j) for j in rng.choice(np.arange(1, i), size=count, replace=False)))
            nodes.append(Node(str(kind), inputs))
    try:
        validate(tuple(nodes))
    except ValueError:
        return None
    return tuple(nodes)


def graphs(rng: np.random.Generator, count: int, sizes=(3, 4, 5, 6, 7)) -> list[tuple[Node, ...]]:
    found = []
    while len(found) < count:
        graph = random_graph(rng, int(rng.choice(sizes)))
        if graph is not None:
            found.append(graph)
    return found


def renumber(nodes: tuple[Node, ...], rng: np.random.Generator) -> tuple[Node, ...]:
    """The same graph under a random topological numbering (node 0, the image, stays 0)."""
    readers: dict[int, list[int]] = {}
    for i, n in enumerate(nodes, start=1):
        for j in n.inputs:
            readers.setdefault(j, []).append(i)
    waiting = {i: len(set(n.inputs) - {0}) for i, n in enumerate(nodes, start=1)}
    ready = [i for i, count in waiting.items() if count == 0]
    order = []
    while ready:
        pick = ready.pop(int(rng.integers(len(ready))))
        order.append(pick)
        for reader in set(readers.get(pick, ())):
            waiting[reader] -= 1
            if waiting[reader] == 0:
                ready.append(reader)
    new = {0: 0, **{old: position for position, old in enumerate(order, start=1)}}
    return tuple(Node(nodes[old - 1].op, tuple(sorted(new[j] for j in nodes[old - 1].inputs)),
                      nodes[old - 1].width, nodes[old - 1].kernel) for old in order)


def label(node: Node) -> tuple:
    return node.op, node.width, node.kernel


def isomorphic(a: tuple[Node, ...], b: tuple[Node, ...]) -> bool:
    """Brute force: some bijection of the nodes (the image fixed) keeps every label and every input set."""
    if len(a) != len(b) or Counter(map(label, a)) != Counter(map(label, b)):
        return False
    for perm in itertools.permutations(range(1, len(a) + 1)):
        where = {0: 0, **{i: p for i, p in zip(range(1, len(a) + 1), perm)}}
        if all(label(a[i - 1]) == label(b[where[i] - 1]) and
               {where[j] for j in a[i - 1].inputs} == set(b[where[i] - 1].inputs) for i in range(1, len(a) + 1)):
            return True
    return False


def test_the_brute_force_check_tells_isomorphic_from_different():
    twins = (Node("conv", (0,), 8, 3), Node("conv", (0,), 8, 1), Node("add", (1, 2)))
    swapped = (Node("conv", (0,), 8, 1), Node("conv", (0,), 8, 3), Node("add", (1, 2)))
    chain = (Node("conv", (0,), 8, 3), Node("conv", (1,), 8, 1), Node("add", (1, 2)))
    assert isomorphic(twins, swapped) and not isomorphic(twins, chain)


def test_a_thousand_random_graphs_keep_their_key_under_every_renumbering():
    rng = np.random.default_rng(0)
    for graph in graphs(rng, 1000, sizes=(4, 5, 6, 7, 8, 9)):
        key = make(graph).key
        for _ in range(3):
            assert make(renumber(graph, rng)).key == key, graph


def test_graphs_share_a_key_exactly_when_they_are_isomorphic():
    rng = np.random.default_rng(1)
    pool = graphs(rng, 400, sizes=(3, 4, 5, 6))
    pool += [renumber(g, rng) for g in pool[:100]]  # make sure many pairs are isomorphic
    keys = {graph: make(graph).key for graph in pool}
    kinds = {graph: (len(graph), sorted(Counter(map(label, graph)).items(), key=str)) for graph in pool}
    checked = isomorphic_pairs = 0
    for a, b in itertools.combinations(pool, 2):
        if kinds[a] != kinds[b]:
            assert keys[a] != keys[b]  # different nodes, different keys
            continue
        same = isomorphic(a, b)
        assert (keys[a] == keys[b]) == same, (a, b)
        checked += 1
        isomorphic_pairs += same
    assert checked > 1000 and isomorphic_pairs > 100  # the test saw both kinds of pair, in numbers


def test_ties_between_look_alike_nodes_are_broken_by_the_least_key_not_by_numbering():
    # Two convs of one kind reading the image, each feeding a different kind of node: the nodes tie on
    # everything their neighbourhood hashes see until the branches meet, in either numbering.
    first = (Node("conv", (0,), 8, 3), Node("conv", (0,), 8, 3), Node("conv", (1,), 8, 1), Node("conv", (2,), 16, 3),
             Node("concat", (3, 4)))
    second = (Node("conv", (0,), 8, 3), Node("conv", (0,), 8, 3), Node("conv", (2,), 8, 1), Node("conv", (1,), 16, 3),
              Node("concat", (3, 4)))
    assert isomorphic(first, second) and make(first).key == make(second).key
    nodes, mapping = canonical(first)
    assert mapping[0] == 0 and sorted(mapping) == list(range(len(first) + 1))
    assert make(nodes).key == make(first).key  # the canonical form is a fixed point


@pytest.mark.parametrize("width", [4, 6])
def test_parallel_twins_cost_little(width):
    """`width` identical branches from the image into one add: every tie-break gives the same key."""
    nodes = tuple(Node("conv", (0,), 8, 3) for _ in range(width)) + (Node("add", tuple(range(1, width + 1))),)
    assert make(nodes).key == "|".join(["c3-8<0"] * width) + f"|a<{'.'.join(map(str, range(1, width + 1)))}"


def two_regular(cycles: list[int]) -> tuple[Node, ...]:
    """Convs a_1..a_n from the image, and one concat per edge of a graph on the a's made of the given cycles,
    all read by a last concat. Every a reads the image and feeds two concats, every concat reads two a's: local
    hashes and colour refinement see every a alike and every concat alike, whatever the cycles. Only a search
    that tries the ties (individualisation) tells such graphs apart and names each the same way always."""
    n = sum(cycles)
    nodes = [Node("conv", (0,), 8, 3) for _ in range(n)]
    start = 0
    for length in cycles:
        for k in range(length):
            nodes.append(Node("concat", tuple(sorted((start + k + 1, start + (k + 1) % length + 1)))))
        start += length
    nodes.append(Node("concat", tuple(range(n + 1, 2 * n + 1))))
    return tuple(nodes)


def test_graphs_that_refinement_cannot_split_keep_their_key_and_stay_apart():
    rng = np.random.default_rng(2)
    mixed, ring = two_regular([4, 3]), two_regular([7])  # not isomorphic: one has a triangle
    key = make(mixed).key
    for _ in range(20):
        assert make(renumber(mixed, rng)).key == key
    assert make(ring).key != key
    assert make(renumber(ring, rng)).key == make(ring).key
