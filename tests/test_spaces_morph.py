"""space=morph: canonical, isomorphism-invariant keys; validation; function-preserving morphisms; the edit
distance (layers by dynamic programming, skips by the Hungarian algorithm)."""

import itertools
import math

import numpy as np
import pytest
import torch

from nasrun.search.loop import space_size
from nasrun.spaces.morph.distance import layer_distances, skip_distances
from nasrun.spaces.morph.graph import MAX_WIDTH, parse
from nasrun.spaces.morph.network import inherit
from nasrun.spaces.morph.ops import add_skip, apply, concat_skip, deepen, moves, widen
from nasrun.spaces.morph.space import SEEDS, MorphSpace
from nasrun.strategies.bayesian import BayesianOptimization


def layer_distance(a, b) -> float:
    return float(layer_distances(a, [b])[0])


def skip_distance(a, b) -> float:
    return float(skip_distances(a, [b])[0])


def all_morphs(arch, rng, max_width: int = MAX_WIDTH) -> list:
    """Every morphism of `arch` (the space draws one at a time; the tests check them all)."""
    return [apply(arch, move, rng) for move in moves(arch, max_width)]


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_seeds_build_and_run_on_both_input_shapes_and_round_trip(seed):
    space = MorphSpace(seed)
    assert space.from_key(space.seed.key) == space.seed and space_size(space) == math.inf
    for channels, size in ((3, 32), (1, 28)):
        out = space.build(space.seed, channels, size, 10)(torch.randn(2, channels, size, size))
        assert out.shape == (2, 10)


def test_isomorphic_graphs_share_one_key():
    assert parse("c3-32<0|c5-32<0|a<1.2").key == parse("c5-32<0|c3-32<0|a<1.2").key
    assert parse("c3-32<0|c1-16<1|c5-16<1|k<2.3").key == parse("c3-32<0|c5-16<1|c1-16<1|k<2.3").key
    assert parse("c3-32<0|c5-32<0|a<1.2").key != parse("c3-32<0|c3-32<0|a<1.2").key


@pytest.mark.parametrize("text,message", [
    ("c3-32<0|c3-32<5", "node 2 .conv.: inputs .5,. must be distinct earlier nodes"),
    ("c3-32<0|c3-16<1|a<1.2", "node 3 .add.: inputs .1, 2. have different widths"),
    ("c3-32<0|p<1|k<1.2", "node 3 .concat.: inputs .1, 2. have different resolutions"),
    ("c3-32<0|c3-32<0|c3-32<1", "node 2 .conv.: nothing reads it"),
    ("c3-32<0|x-16<1|c3-16<2", "node 2 .proj.: a projection only feeds an add"),
    ("c4-32<0", "node 1 kernel=4"),
    ("c3-32<0|q<1", "node 2: 'q<1' is not"),
])
def test_invalid_graphs_name_the_node(text, message):
    with pytest.raises(ValueError, match=message):
        parse(text)


def randomized(space, arch, seed):
    torch.manual_seed(seed)
    model = space.build(arch, 3, 32, 10)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):  # trained-looking statistics, so eval mode matters
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.3, 0.3)
    return model.eval()


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_every_morphism_preserves_the_function(seed):
    space, rng = MorphSpace(seed), np.random.default_rng(0)
    x = torch.randn(3, 3, 32, 32)
    arch, kinds = space.seed, set()
    for step in range(4):  # grow, checking every morphism of each network on the way
        parent = randomized(space, arch, step)
        morphs = all_morphs(arch, rng, 512)
        for morph in morphs[::3] if len(morphs) > 60 else morphs:
            child = space.build(morph.child, 3, 32, 10).eval()
            inherit(child, morph, arch, parent.state_dict(), 3)
            with torch.no_grad():
                assert torch.allclose(child(x), parent(x), atol=1e-5), morph.op
            kinds.add(morph.op.split()[0])
        arch = morphs[int(rng.integers(len(morphs)))].child
    assert kinds == {"deepen", "widen", "add", "concat"}


def test_no_move_makes_a_layer_wider_than_max_width():
    from nasrun.spaces.morph.graph import widths
    from nasrun.spaces.morph.ops import moves

    arch = parse("c3-256<0|c3-256<1|k<1.2")  # 512 wide already: nothing may follow it or join it
    names = {move[0] for move in moves(arch, max_width=512)}
    assert names == {"deepen"} and all(widths(arch.nodes)[m[1]] <= 512 for m in moves(arch, 512))
    space = MorphSpace(max_width=64)
    grown, rng = space.seed, np.random.default_rng(1)
    for _ in range(30):  # a long random walk stays within the limit (and never fails to build a move)
        grown = space.mutate(grown, rng)
    assert max(widths(grown.nodes)[1:]) <= 64


def test_no_morphism_makes_a_network_costlier_than_max_cost_times_the_seed():
    from nasrun.spaces.morph.graph import cost

    space = MorphSpace("plain", max_cost=2.0)
    budget, grown, rng = 2.0 * cost(space.seed.nodes), space.seed, np.random.default_rng(0)
    for _ in range(20):
        assert all(cost(m.child.nodes) <= budget for m in space.morphs(grown, 4))
        grown = space.mutate(grown, rng)
    assert cost(grown.nodes) > 1.5 * cost(space.seed.nodes)  # it grew, up to the cap
    tight = MorphSpace("resnet", max_cost=1.0)  # every morphism of the seed costs something
    assert tight.morphs(tight.seed) == [] and tight.mutate(tight.seed, rng) == tight.seed
    assert cost(parse("c3-8<0|p<1|c1-4<2").nodes) == 9 * 3 * 8 + 8 * 4 / 4  # a layer after a pooling: 1/4
    # Networks near the cap keep their costed moves; a warm space must draw exactly as a fresh one (resume).
    warm, cold = (MorphSpace("plain", max_morphs=20, max_cost=2.0) for _ in range(2))
    for s in range(100, 130):
        warm.sample(np.random.default_rng(s))
    assert warm._costed
    assert [warm.sample(np.random.default_rng(s)).key for s in range(30)] == \
        [cold.sample(np.random.default_rng(s)).key for s in range(30)]


def test_morphisms_refuse_what_would_change_the_function():
    arch = parse(SEEDS["resnet"])
    with pytest.raises(ValueError, match="widen: node 1 cannot be widened"):  # an add reads it
        widen(arch, 1, 64, np.random.default_rng(0))
    with pytest.raises(ValueError, match="add_skip: cannot join node 1 to node 6"):  # across a pooling
        add_skip(arch, 1, 6)
    with pytest.raises(ValueError, match="concat_skip: cannot join"):
        concat_skip(arch, 2, 3)  # node 3 feeds an add: its width may not change
    assert deepen(arch, 5).child.key != arch.key


def test_layer_distance_by_hand():
    assert layer_distance((32, 64), (32, 64)) == 0
    assert layer_distance((32, 64), (32, 32, 64)) == 1  # one unmatched layer
    assert layer_distance((32,), (64,)) == pytest.approx(0.5)  # |32 - 64| / 64
    assert layer_distance((16, 32), (32, 16)) == pytest.approx(1.0)  # two half-way matches beat shifting
    a, b = parse("c3-32<0|c3-32<1|a<1.2"), parse("c3-32<0|c3-64<1")
    space = MorphSpace()
    d = space.distances([a, b], [a, b])
    assert d[0, 0] == d[1, 1] == 0 and d[0, 1] == d[1, 0] == pytest.approx(0.5 + 1.0)  # width + one skip


def test_vectorised_layer_distances_equal_the_plain_dynamic_programme():
    def plain(a, b):
        cost = [[i + j if i == 0 or j == 0 else 0.0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                cost[i][j] = min(cost[i - 1][j] + 1, cost[i][j - 1] + 1,
                                 cost[i - 1][j - 1] + abs(a[i - 1] - b[j - 1]) / max(a[i - 1], b[j - 1]))
        return cost[-1][-1]

    rng = np.random.default_rng(0)
    seqs = [tuple(int(w) for w in rng.choice([16, 24, 32, 64, 128], size=rng.integers(0, 9))) for _ in range(30)]
    for a in seqs[:10]:
        assert layer_distances(a, seqs) == pytest.approx([plain(a, b) for b in seqs])


def skip_cost(x, y):
    """The paper's d_s, written out for one pair."""
    if x[0] != y[0]:
        return 1.0
    scale = max(x[1], y[1]) + max(x[2], y[2])
    return 0.0 if scale == 0 else (abs(x[1] - y[1]) + abs(x[2] - y[2])) / scale


def brute_force(a, b):
    """Every partial matching of the two skip sets, unmatched connections costing 1."""
    best = math.inf
    for k in range(min(len(a), len(b)) + 1):
        for left in itertools.combinations(range(len(a)), k):
            for right in itertools.permutations(range(len(b)), k):
                cost = sum(skip_cost(a[i], b[j]) for i, j in zip(left, right)) + (len(a) - k) + (len(b) - k)
                best = min(best, cost)
    return best


def test_hungarian_skip_matching_equals_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(40):
        sets = [tuple((str(rng.choice(["add", "concat"])), int(rng.integers(0, 6)), int(rng.integers(1, 5)))
                      for _ in range(int(rng.integers(0, 5)))) for _ in range(2)]
        assert skip_distance(*sets) == pytest.approx(brute_force(*sets))


def test_bayesian_optimisation_proposes_a_morph_of_an_observed_ancestor_with_its_operations():
    space = MorphSpace("plain", max_morphs=2)
    strategy = BayesianOptimization(space, 0, initial=3, t_min=0.05)
    for _ in range(5):
        arch = strategy.ask()
        strategy.tell(arch, 50.0 + sum(n.op == "conv" for n in arch.nodes))  # deeper is better
    proposed = strategy.ask()
    ancestor, steps = strategy.lineage(proposed)
    assert ancestor.key in strategy.observed and steps and steps[-1].child == proposed
    # The operation sequence is valid: applied to the ancestor's weights, it gives the proposal the ancestor's
    # function.
    parent_arch, parent = ancestor, randomized(space, ancestor, 1)
    x = torch.randn(2, 3, 32, 32)
    for morph in steps:
        child = space.build(morph.child, 3, 32, 10).eval()
        inherit(child, morph, parent_arch, parent.state_dict(), 3)
        parent_arch, parent = morph.child, child
    with torch.no_grad():
        assert torch.allclose(parent(x), randomized(space, ancestor, 1)(x), atol=1e-5)
    assert strategy.lineage(space.seed) is None  # the initial random architectures have none
