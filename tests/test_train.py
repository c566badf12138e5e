import pytest
import torch
from torch import nn

from nasrun.data import synthetic
from nasrun.evaluators.train import TrainingEvaluator, trial_seed
from nasrun.spaces.custom import CustomSpace
from nasrun.train import TrainConfig, TrainingDiverged, train

ARCH = CustomSpace().make(dict(conv3=1, num_block=1, conv5=1, feature=64, dropout=0.25))


@pytest.fixture(scope="module")
def data():
    return synthetic(num_train=600, num_test=200, seed=0)


def test_training_learns_and_reports_every_metric(data):
    evaluator = TrainingEvaluator(CustomSpace(), data, epochs=2, seed=0)
    metrics, model = evaluator(ARCH)
    assert set(metrics) >= {"val_acc", "val_loss", "params", "train_seconds", "val_seconds", "history", "precision"}
    assert "test_acc" not in metrics  # measured only when the runner asks (the best so far)
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert metrics["params"] == sum(p.numel() for p in model.parameters())
    tested = evaluator.test(model)
    assert tested["test_acc"] > 60 and tested["test_seconds"] > 0  # 4 classes: chance is 25 %
    every, _ = TrainingEvaluator(CustomSpace(), data, epochs=2, seed=0, test_every_trial=True)(ARCH)
    assert every["test_acc"] == tested["test_acc"] and every["val_acc"] == metrics["val_acc"]


def test_a_passed_deadline_stops_training_and_evaluation_between_batches(data):
    import time

    from nasrun.deadline import TrialCancelled
    from nasrun.train import evaluate

    with pytest.raises(TrialCancelled, match="during training"):
        TrainingEvaluator(CustomSpace(), data, epochs=1, seed=0)(ARCH, deadline=time.monotonic())
    model = nn.Sequential(nn.Flatten(), nn.Linear(256, 4))
    with pytest.raises(TrialCancelled, match="test evaluation"):
        evaluate(model, data, "test", deadline=time.monotonic() - 1)
    assert evaluate(model, data, "test", deadline=time.monotonic() + 60)[0] >= 0


def test_same_seed_same_metrics_and_global_rng_untouched(data):
    state = torch.random.get_rng_state()
    first, _ = TrainingEvaluator(CustomSpace(), data, epochs=1, seed=0)(ARCH)
    second, _ = TrainingEvaluator(CustomSpace(), data, epochs=1, seed=0)(ARCH)
    assert torch.equal(state, torch.random.get_rng_state())
    strip = lambda m: {k: v for k, v in m.items() if "seconds" not in k and k != "history"}
    assert strip(first) == strip(second)
    assert trial_seed(0, ARCH.key) != trial_seed(1, ARCH.key)


def test_nan_loss_raises_training_diverged(data):
    model = nn.Sequential(nn.Flatten(), nn.Linear(256, 4))
    with torch.no_grad():
        model[1].weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="loss is nan"):
        train(model, data, TrainConfig(epochs=1))


def test_sgd_and_label_smoothing_run(data):
    model = nn.Sequential(nn.Flatten(), nn.Linear(256, 4))
    metrics = train(model, data, TrainConfig(epochs=3, optimizer="sgd", lr=0.05, label_smoothing=0.1,
                                             precision="fp32"))
    assert metrics["precision"] == "fp32" and metrics["val_acc"] > 50


@pytest.mark.parametrize("kwargs,key", [({"optimizer": "adamw"}, "optimizer"), ({"lr": 0}, "lr"),
                                        ({"precision": "fp16"}, "precision"), ({"epochs": 0}, "epochs")])
def test_bad_training_options_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        TrainConfig(**kwargs)
