"""Evaluators turn an architecture into a trial result. Each `evaluator` config option targets one class here.

An evaluator is called as `evaluator(arch) -> (metrics, model_or_None)`; `metrics["val_acc"]` is the fitness the
strategy is told (selection never sees test accuracy), and `metrics["test_acc"]` is what gets reported.
"""
