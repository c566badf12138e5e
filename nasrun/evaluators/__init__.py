"""Evaluators turn an architecture into a trial result. Each `evaluator` config option targets one class here.

An evaluator is called as `evaluator(arch, deadline=None) -> (metrics, model_or_None)`; past `deadline` (a
`time.monotonic()` value, the run's wall-clock budget) it raises `nasrun.deadline.TrialCancelled`. The strategy
is told `metrics["fitness"]` when present (a proxy score), else `metrics["val_acc"]`; selection never sees test
accuracy, and `metrics["test_acc"]` is what gets reported. An evaluator whose metrics lack `test_acc` offers
`test(model, deadline=None) -> dict`, which the runner calls only for a trial that becomes the best so far.
"""
