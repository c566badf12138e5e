"""nasrun.objectives: the objectives and constraints value, its checks and its arithmetic."""

import pytest

from nasrun.objectives import Objectives, Scores


def test_default_is_plain_validation_accuracy():
    objectives = Objectives.from_config(["val_acc"], {})
    assert objectives.plain and not objectives.multi and objectives == Objectives()


@pytest.mark.parametrize("names,constraints,field", [
    ([], {}, "objectives=[]"),
    (["val_acc", "latncy_ms"], {}, "objectives: 'latncy_ms'"),
    (["val_acc", "val_acc"], {}, "named twice"),
    (["latency_ms"], {}, "val_acc must be one of them"),
    (["val_acc"], {"latency": 5.0}, "constraints: 'latency'"),
    (["val_acc"], {"latency_ms": -1.0}, "constraints.latency_ms=-1.0"),
    (["val_acc"], {"params": "big"}, "constraints.params='big'"),
    ("val_acc,latency_ms", {}, "not a metric"),
])
def test_bad_objectives_and_constraints_name_the_field(names, constraints, field):
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        Objectives.from_config(names, constraints)


def test_violation_is_the_sum_of_relative_excesses():
    objectives = Objectives.from_config(["val_acc", "latency_ms"], {"latency_ms": 5.0, "params": 1e6,
                                                                    "val_acc": 80.0})
    assert objectives.violation({"latency_ms": 4.0, "params": 5e5, "val_acc": 90.0}) == 0.0
    assert objectives.violation({"latency_ms": 6.0, "params": 1.5e6}) == pytest.approx(0.2 + 0.5)
    assert objectives.violation({"val_acc": 60.0}) == pytest.approx(0.25)  # a lower bound on accuracy
    assert objectives.before_training() == ("latency_ms", "params")


def test_vector_is_oriented_higher_is_better():
    objectives = Objectives.from_config(["val_acc", "latency_ms", "params"])
    assert objectives.maximise == (True, False, False)
    assert objectives.vector({"val_acc": 90.0, "latency_ms": 3.0, "params": 7.0}) == (90.0, -3.0, -7.0)
    assert objectives.vector({"val_acc": 90.0}) is None
    assert objectives.scores(None) == Scores(None, 0.0)
    assert objectives.describe()["directions"] == ["max", "min", "min"]
