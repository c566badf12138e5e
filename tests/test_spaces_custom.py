import json

import numpy as np
import pytest
import torch

from nasrun.spaces.custom import CHOICES, CustomSpace

SPACE = CustomSpace()


def CustomArch(conv3, num_block, conv5, feature, dropout):
    return SPACE.make(dict(conv3=conv3, num_block=num_block, conv5=conv5, feature=feature, dropout=dropout))


def test_space_has_108_distinct_architectures():
    archs = list(SPACE)
    assert len(SPACE) == 108 == len(archs) == len(set(archs)) == len({a.key for a in archs})


@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32)])
def test_every_architecture_builds_and_runs_forward(channels, size):
    torch.manual_seed(0)
    x = torch.randn(2, channels, size, size)
    for arch in SPACE:
        model = SPACE.build(arch, channels, size, 10).eval()
        with torch.no_grad():
            out = model(x)
        assert out.shape == (2, 10), arch.key


def test_flattened_size_matches_the_published_4608_where_it_fits():
    # Matos's network hard-codes 4608 = 512*3*3; for 28x28 that is right for num_block 1 and 2 only.
    for num_block, expected in [(1, 4608), (2, 4608), (3, 8192)]:
        model = SPACE.build(CustomArch(1, num_block, 0, 64, 0.5), 1, 28, 10)
        linears = [m for m in model if isinstance(m, torch.nn.Linear)]
        assert linears[0].in_features == expected


def test_arch_is_an_immutable_hashable_value_with_one_canonical_string():
    a = CustomArch(conv3=1, num_block=2, conv5=0, feature=128, dropout=0.5)
    b = CustomArch(conv3=1.0, num_block=2, conv5=0, feature=128, dropout=0.5)
    assert a == b and hash(a) == hash(b) and a.key == b.key
    assert a.key == "conv3=1,num_block=2,conv5=0,feature=128,dropout=0.5"
    assert SPACE.from_key(a.key) == a
    assert SPACE.from_json(json.loads(json.dumps(a.to_json()))) == a
    assert SPACE.from_json(a.key) == a
    with pytest.raises(AttributeError):
        a.conv3 = 0


@pytest.mark.parametrize("field,value", [("conv3", 2), ("num_block", 0), ("feature", 100), ("dropout", 0.3),
                                         ("conv3", True), ("dropout", "0.5")])
def test_invalid_architecture_names_the_field(field, value):
    values = {"conv3": 0, "num_block": 1, "conv5": 0, "feature": 64, "dropout": 0.25, field: value}
    with pytest.raises(ValueError, match=field):
        CustomArch(**values)


@pytest.mark.parametrize("key,fault", [("conv3=1,num_block=2", "conv5"), ("conv3=1;num_block=2", "conv3"),
                                       ("conv3", "malformed"),
                                       ("conv3=x,num_block=1,conv5=0,feature=64,dropout=0.25", "conv3"),
                                       ("conv3=1,num_block=1,conv5=0,feature=64,dropout=0.25,extra=1", "extra")])
def test_malformed_key_names_the_fault(key, fault):
    with pytest.raises(ValueError, match=fault):
        SPACE.from_key(key)


def test_mutation_always_changes_something_and_only_to_allowed_values():
    rng = np.random.default_rng(0)
    for arch in list(SPACE)[::7]:
        for prob in (0.05, 0.5, None):
            child = SPACE.mutate(arch, rng, prob)
            assert child != arch
            if prob is None:
                assert sum(child.to_json()[k] != arch.to_json()[k] for k in CHOICES) == 1


def test_crossover_takes_each_choice_from_a_parent_with_probability_half():
    rng = np.random.default_rng(1)
    a = CustomArch(0, 1, 0, 64, 0.25)
    b = CustomArch(1, 3, 1, 193, 0.75)
    from_a = np.zeros(5)
    n = 2000
    for _ in range(n):
        child = SPACE.crossover(a, b, rng).to_json()
        for i, k in enumerate(CHOICES):
            assert child[k] in (a.to_json()[k], b.to_json()[k])
            from_a[i] += child[k] == a.to_json()[k]
    assert np.all(np.abs(from_a / n - 0.5) < 0.05)


def test_uniform_sampling_covers_the_space():
    rng = np.random.default_rng(2)
    seen = {SPACE.sample(rng) for _ in range(2000)}
    assert len(seen) == 108
