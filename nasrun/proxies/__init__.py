"""Zero-cost proxies: `zero_cost` holds the proxy functions `f(model, batch) -> float`, `scorer` the seeded,
cached `ProxyScorer` that applies one to a space's architectures, and `correlation` the library behind
`nasrun-score` (scores of sampled cells and their rank correlation with a benchmark table).

Nothing is imported here: `zero_cost` imports torch, and a config that names no proxy never needs it.
"""
