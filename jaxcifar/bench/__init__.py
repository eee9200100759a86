"""Speed measurements: jaxcifar's steps and pipeline, and the same network in PyTorch.

  benchmark        everything in one run, into results/benchmark-<device>.json
  augment_speed    host augmentation throughput alone
  torch_reference  the PyTorch original's network and step (imports torch; never
                   imported by the training code)

The command lines are scripts/benchmark.py, scripts/benchmark_augment.py and
scripts/torch_reference.py.
"""
