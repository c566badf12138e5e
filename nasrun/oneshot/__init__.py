"""One-shot search with weight sharing on NAS-Bench-201's cell space: one supernet holds every operation of every
edge (`supernet`), trained by DARTS, GDAS or random paths (the `oneshot` config group: `darts`, `gdas`, `rsps`),
epoch by epoch with a checkpoint after each (`training`), then read out (`run`): the argmax cell of DARTS's and
GDAS's architecture parameters, or, for random paths, any of nasrun's strategies with the trained supernet as a
cheap evaluator (`evaluator`)."""
