"""Every shipped space, strategy and evaluator fits its protocol, and the helpers answer for each."""

import numpy as np
import pytest

from nasrun.contracts import (
    Evaluator,
    Space,
    Strategy,
    is_table_space,
    measures_test_apart,
    trains,
)
from nasrun.data.builtin import synthetic
from nasrun.evaluators.train import TrainingEvaluator
from nasrun.spaces.custom import CustomSpace
from nasrun.spaces.generic import GenericSpace
from nasrun.spaces.nb201 import NB201Space
from nasrun.strategies.evolution import RegularizedEvolution
from nasrun.strategies.random import RandomSearch


@pytest.mark.parametrize("space", [CustomSpace(), NB201Space(), NB201Space(8, 1),
                                   GenericSpace({"a": [1, 2]}, "nasrun.spaces.custom.build")],
                         ids=["custom", "nb201", "nb201-small", "generic"])
def test_spaces_and_strategies_fit_their_protocols(space):
    assert isinstance(space, Space)
    arch = space.sample(np.random.default_rng(0))
    assert space.from_json(arch.to_json()) == arch and space.from_json(arch.key) == arch
    for strategy in (RandomSearch(space, 0), RegularizedEvolution(space, 0, population_size=2, sample_size=2)):
        assert isinstance(strategy, Strategy)
    assert is_table_space(space) == (isinstance(space, NB201Space) and space.channels == 16
                                     and space.cells_per_stage == 5)


def test_per_instance_choices():
    assert NB201Space().choices is not GenericSpace({"a": [1]}, "nasrun.spaces.custom.build").choices
    small, large = GenericSpace({"d": [1, 2]}, "nasrun.spaces.custom.build"), \
        GenericSpace({"d": [1, 2, 3, 4]}, "nasrun.spaces.custom.build")
    assert (len(small), len(large)) == (2, 4)


def test_the_training_evaluator_fits_and_answers_the_helpers():
    evaluator = TrainingEvaluator(CustomSpace(), synthetic(), epochs=1, seed=0)
    assert isinstance(evaluator, Evaluator) and trains(evaluator) and measures_test_apart(evaluator)

    class Lookup:
        reports_cost = True
        trains = False

        def __call__(self, arch, deadline=None):
            return {"val_acc": 1.0}, None

        def describe(self):
            return {"dataset": "x"}

    assert isinstance(Lookup(), Evaluator) and not trains(Lookup()) and not measures_test_apart(Lookup())
