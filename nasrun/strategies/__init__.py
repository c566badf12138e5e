"""Search strategies: objects with `ask() -> arch` and `tell(arch, fitness)`, nothing else.

They never train, read the clock or touch files; the runner owns budget, deduplication, logging and resume.
`fitness` is the number to maximise (validation accuracy), or None for a failed trial.
"""
