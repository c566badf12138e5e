"""`make bench` (`python -m nasrun.bench`): the speed figures the README and closing notes report, measured side
by side in one process.

1. Trainer throughput (training images/s), this machine, for two cases: the custom space's architecture on
   Fashion-MNIST at batch 64 (`throughput`), and NAS-Bench-201's all-nor_conv_3x3 cell (C=16, N=5) on CIFAR-10
   at batch 128 (`nb201`). Variants:
   - nasrun's `train()` (uint8 tensors on the device, channels_last, bf16 autocast where native);
   - a minimal hand-written loop over the same in-memory float tensors, plain fp32 NCHW;
   - the same minimal loop with nasrun's precision and memory format (the fair test of nasrun's own overhead);
   - Fashion-MNIST only: the pipeline of Matos (2023), DataLoader over torchvision's FashionMNIST + ToTensor.
   CIFAR-10 is measured without augmentation in both, so the loops do the same work (nasrun's batched crop
   and flip is reported as one more variant). Rounds interleave the variants so machine noise hits all of
   them alike; the median round is reported.
2. `tabular` and `sweeps` (`nasrun.bench.tabular`): the runner's own cost per trial over the
   NAS-Bench-201 table, and the 30-seed sweeps of the nb201_rea, nb201_random, nb201_reinforce and
   nb201_bayesian presets, side by side.
3. `search`: the default search (`make run`), wall time and best test accuracy.
4. `proxies` (`nasrun.bench.proxies`): each zero-cost proxy's rank correlation with NAS-Bench-201's
   accuracies over sampled cells, beside the published values, and its seconds per cell.
5. `eval`, `phases` and `threads` (`nasrun.bench.evaluation`): evaluation images/s against a minimal
   inference_mode loop; one trial's seconds by phase; proxy scoring beside a busy process, with and without
   `device.threads=1`.

6. `folder` (`nasrun.bench.folder`): dataset=folder's decode-and-cache images/s on Fashion-MNIST written out as
   PNGs, against torchvision's ImageFolder + DataLoader reading the same folder for one epoch; the cached start.

7. `faults` (`nasrun.bench.faults.runner`): the fault-injection suite's table.
8. `executors` (`nasrun.bench.executors`): trials per hour through the inline, pool and ray executors; each
   executor's milliseconds per trial on the table; asynchronous search on the simulated clock with 1, 4 and
   16 virtual workers (30 seeds each).

9. `reinforce` (`nasrun.bench.reinforce`): REINFORCE against random search on a toy reward at equal samples,
   and the controllers' milliseconds per child.
10. `bayesian` (`nasrun.bench.bayesian`): Bayesian optimisation's seconds per ask on the NAS-Bench-201 table
   and on space=morph with 50 and 200 architectures observed, its best toy reward against random search at
   equal samples, one epoch of the same morphed networks with and without inherited weights, and a small
   Fashion-MNIST search on space=morph against random search and evolution (3 seeds, 8 trials, 5 % of the data).
   (Its 30-seed nb201_bayesian sweep is one of `sweeps`.)
11. `soak` (`nasrun.bench.soak`, only with `--only soak`: minutes per executor): a long synthetic search with
   each executor, the growth per 1,000 trials of resident memory (the process and its workers), open file
   descriptors and threads.

Results go to outputs/bench-DATE-TIME/bench.json under the working directory.

Usage: python -m nasrun.bench [--only NAME] [--images N] [--rounds R] [--root DIR] [--threads N]
"""
