"""The macro space of Zoph & Le: canonical strings, validation, NASCNN15, and networks on both input shapes."""

import numpy as np
import pytest
import torch

from nasrun.spaces.macro import NASCNN15, MacroSpace


def test_nascnn15_has_the_papers_parameter_count_and_output_shape():
    space = MacroSpace(15)
    arch = space.from_key(NASCNN15)
    assert arch.key == NASCNN15 and space.from_json(arch.to_json()) == arch
    model = space.build(arch, 3, 32, 10)
    assert sum(p.numel() for p in model.parameters()) == 4_201_630
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("shape", [(3, 32), (1, 28)])
def test_sampled_networks_build_and_run_on_both_input_shapes(shape):
    channels, size = shape
    space = MacroSpace(5)
    rng = np.random.default_rng(0)
    for _ in range(6):
        arch = space.sample(rng)
        assert space.from_key(arch.key) == arch
        with torch.no_grad():
            assert space.build(arch, channels, size, 10)(torch.randn(2, channels, size, size)).shape == (2, 10)


def test_a_layer_with_no_input_takes_the_image_and_has_one_string():
    space = MacroSpace(2)
    values = {"1.height": 3, "1.width": 3, "1.filters": 24,
              "2.height": 1, "2.width": 7, "2.filters": 64, "2.from0": False, "2.from1": False}
    assert space.make(values).key == "3x3-24<0|1x7-64<0"


def test_a_dangling_layer_joins_the_last_layers_input():
    space = MacroSpace(3)
    model = space.build(space.from_key("3x3-24<0|3x3-36<0|3x3-48<1"), 3, 16, 10)
    assert model.inputs[-1] == (1, 2) and model.layers[2][0].in_channels == 24 + 36


def test_mutation_and_crossover_stay_in_the_space_and_change_something():
    space = MacroSpace(4)
    rng = np.random.default_rng(1)
    a, b = space.sample(rng), space.sample(rng)
    child = space.mutate(a, rng)
    assert space.from_key(child.key) == child
    assert space.from_key(space.crossover(a, b, rng).key)
    assert len(space.choices) == 4 * 3 + (2 + 3 + 4)  # sizes and filters, one switch per earlier input from layer 2


@pytest.mark.parametrize("text,match", [
    ("3x3-36<0|3x3-48<1|3x3-36<1|1x1-24<0", "4 layers; this space .* has at most 3"),
    ("3x3-36<0|3x4-48<1|3x3-36<1", "layer 2: width=4; choose one of: 1, 3, 5, 7"),
    ("3x3-36<0|3x3-50<1|3x3-36<1", "layer 2: filters=50"),
    ("3x3-36<0|3x3-48<2|3x3-36<1", "layer 2: inputs 2 must be distinct earlier layers"),
    ("3x3-36<0|3x3-48<1|3x3-36<1.1", "layer 3: inputs 1.1 must be distinct"),
    ("3x3-36|3x3-48<1|3x3-36<1", r"layer 1: '3x3-36' is not FHxFW-N<inputs"),
])
def test_a_bad_string_names_the_layer_and_what_is_wrong(text, match):
    with pytest.raises(ValueError, match=match):
        MacroSpace(3).from_key(text)


def test_a_shallower_network_is_a_prefix_of_the_decisions():
    space = MacroSpace(5)
    deep = space.sample(np.random.default_rng(2))
    values = deep.choices()
    shallow = space.make({d: values[d] for d in space.layer_dims(2)})
    assert shallow.key == "|".join(deep.key.split("|")[:2]) and space.from_key(shallow.key) == shallow
    with pytest.raises(ValueError, match="missing field '2.from1'"):
        space.make({d: values[d] for d in space.layer_dims(2) if d != "2.from1"})


def test_the_layer_options_are_settings_of_the_space():
    space = MacroSpace(2, sizes=[5, 1], filters=[16])
    assert space.choices["1.height"] == (1, 5) and space.choices["2.filters"] == (16,)
    arch = space.sample(np.random.default_rng(0))
    assert all(layer.filters == 16 and layer.height in (1, 5) for layer in arch.layers)
    assert space.from_key("5x1-16<0|1x5-16<0.1").layers[0].height == 5
    with pytest.raises(ValueError, match=r"layer 1: height=3; choose one of: 1, 5 \(space.sizes\)"):
        space.from_key("3x1-16<0")
    with pytest.raises(ValueError, match=r"layer 1: filters=24; choose one of: 16 \(space.filters\)"):
        space.from_key("1x1-24<0")
    assert MacroSpace(15).from_key(NASCNN15).key == NASCNN15  # the defaults are the paper's


@pytest.mark.parametrize("kwargs,match", [
    ({"sizes": [2, 3]}, r"sizes=\[2, 3\]: kernel sizes must be odd"),
    ({"sizes": []}, r"sizes=\[\]: must list at least one value"),
    ({"filters": [16, 16]}, r"filters=\[16, 16\]: must list at least one value, each once"),
    ({"filters": [0]}, r"filters=0: must be an integer in \[1, 1024\]"),
    ({"filters": "16"}, r"filters='16': must be a list of integers"),
    ({"sizes": [3.5]}, r"sizes=3.5: must be an integer"),
])
def test_bad_layer_options_name_the_setting(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MacroSpace(3, **kwargs)
