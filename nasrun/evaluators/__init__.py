"""Evaluators turn an architecture into a trial result. Each `evaluator` config option targets one class here.

An evaluator is called as `evaluator(arch) -> (metrics, model_or_None)`. The strategy is told
`metrics["fitness"]` when present (a proxy score), else `metrics["val_acc"]`; selection never sees test accuracy,
and `metrics["test_acc"]` is what gets reported.
"""
