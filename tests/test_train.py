import pytest
import torch
from torch import nn

from nasrun.data.builtin import synthetic
from nasrun.evaluators.train import TrainingEvaluator, trial_seed
from nasrun.spaces.custom import CustomSpace
from nasrun.training.train import TrainConfig, TrainingDiverged, train

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
    from nasrun.training.train import evaluate

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


def test_learning_rate_warms_up_linearly_then_follows_the_schedule():
    from nasrun.training.train import learning_rate

    cosine = TrainConfig(epochs=10, lr=0.1, schedule="cosine", warmup_epochs=2)
    assert learning_rate(cosine, 0, 0, 4) == pytest.approx(0.1 / 8)  # the first step already learns
    assert learning_rate(cosine, 1, 3, 4) == pytest.approx(0.1)  # the warm-up's last step reaches lr
    assert learning_rate(cosine, 2, 0, 4) == pytest.approx(0.1)
    assert learning_rate(cosine, 6, 0, 4) == pytest.approx(0.05)  # half-way through the cosine
    assert 0 < learning_rate(cosine, 9, 3, 4) < 0.001  # near 0 at the end
    step = TrainConfig(epochs=10, lr=0.1, schedule="step", step_epochs=3, gamma=0.5)
    assert [learning_rate(step, e, 2, 4) for e in (0, 2, 3, 6, 9)] == pytest.approx([0.1, 0.1, 0.05, 0.025, 0.0125])
    assert learning_rate(TrainConfig(epochs=3, lr=0.01), 2, 1, 4) == 0.01  # constant


@pytest.mark.parametrize("kwargs,key", [({"optimizer": "adam", "nesterov": True}, "nesterov"),
                                        ({"schedule": "linear"}, "schedule"), ({"warmup_epochs": 3}, "warmup_epochs"),
                                        ({"patience": 0}, "patience"), ({"gamma": 0}, "gamma")])
def test_bad_schedule_options_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=f"^{key}="):
        TrainConfig(epochs=3, **kwargs)


def test_early_stopping_restores_the_best_epoch():
    """Labels that carry no signal: validation peaks early, patience stops the training, and the model ends with
    the best epoch's weights (its validation accuracy is measured again, not copied from the history)."""
    from nasrun.training.train import evaluate

    noise = synthetic(num_train=256, num_test=64, seed=3)
    noise.train_y = noise.train_y[torch.randperm(len(noise.train_y), generator=torch.Generator().manual_seed(0))]
    model = nn.Sequential(nn.Flatten(), nn.Linear(256, 4))
    metrics = train(model, noise, TrainConfig(epochs=30, lr=0.05, patience=2, restore_best=True, precision="fp32"))
    history = metrics["history"]
    assert metrics["stopped_early"] and metrics["epochs_run"] < 30
    assert metrics["epochs_run"] == metrics["best_epoch"] + 2 and metrics["epoch"] == metrics["best_epoch"]
    assert metrics["val_acc"] == max(h["val_acc"] for h in history)
    assert evaluate(model, noise, "val")[0] == pytest.approx(metrics["val_acc"])


def test_a_training_interrupted_after_an_epoch_resumes_to_the_same_weights(data):
    """What last.pt holds is enough to continue: weights, optimizer, data order, augmentation and dropout
    streams, the schedule's position and the early-stopping record."""
    space = CustomSpace()
    augmented = synthetic(num_train=300, num_test=50, seed=1)
    augmented.augment = True
    config = TrainConfig(epochs=3, optimizer="sgd", nesterov=True, lr=0.05, schedule="cosine", warmup_epochs=1,
                         restore_best=True, precision="fp32")

    def run(on_epoch=None, resume=None):
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = space.build(ARCH, 1, 16, 4)
            return model, train(model, augmented, config, on_epoch=on_epoch, resume=resume)

    whole, whole_metrics = run()
    saved = []

    class Killed(Exception):
        pass

    def save_then_die(state):
        saved.append(torch_copy(state))
        raise Killed

    with pytest.raises(Killed):
        run(on_epoch=save_then_die)
    assert saved[0]["epoch"] == 1
    resumed, resumed_metrics = run(resume=saved[0])
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    strip = lambda m: [{k: v for k, v in h.items() if k != "seconds"} for h in m["history"]]
    assert strip(whole_metrics) == strip(resumed_metrics)


def torch_copy(state: dict) -> dict:
    """A deep copy through torch.save, as last.pt stores it."""
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)
