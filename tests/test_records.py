"""The trial record schema: fitness, which record is better, the running best."""

from nasrun.records import best_of, better, fitness, running_best, reported_accuracy


def rec(trial, status="ok", **metrics):
    return {"trial": trial, "key": str(trial), "arch": str(trial), "status": status, "metrics": metrics}


def test_fitness_is_the_proxy_score_when_given_else_validation_accuracy():
    assert fitness(rec(0, val_acc=80.0)) == 80.0
    assert fitness(rec(0, val_acc=80.0, fitness=3.5)) == 3.5
    assert fitness(rec(0, "failed")) is None and fitness(rec(0, "cancelled")) is None


def test_strictly_better_wins_and_ties_keep_the_earlier_trial():
    records = [rec(0, "failed"), rec(1, val_acc=70.0, test_acc=69.0), rec(2, val_acc=75.0, test_acc=71.0),
               rec(3, val_acc=75.0, test_acc=99.0), rec(4, "cancelled"), rec(5, val_acc=60.0)]
    assert [best["trial"] if best else None for _, best in running_best(records)] == [None, 1, 2, 2, 2, 2]
    assert best_of(records)["trial"] == 2 and reported_accuracy(best_of(records)) == 71.0
    assert not better(rec(6, "failed"), None) and better(rec(7, val_acc=0.0), None)
    assert best_of([]) is None and reported_accuracy(None) is None
