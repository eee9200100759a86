"""Research beside the product: the studies, benchmarks and evidence behind the README's numbers.

Never installed (the wheel holds `jaxcifar/` alone); run from the repository root as
`python -m research.X`. Each module imports the product, never the other way round:

  readme_tables    the README's generated blocks, from results/*.json (--check: compare)
  collect_run      a finished run's results and figures into results/ and figures/
  benchmark        speed of the steps and the pipeline, beside PyTorch's
  benchmark_augment, conv_layers, cpu_variants, ctrl_c_latency   narrower timings
  ctrl_c_startup   Ctrl-C at random moments of a command's start-up: any crash?
  torch_reference  the PyTorch original's network and step (imports torch)
  cpu24_runs       the 24-epoch investigation runs, one after another, resumable
  jpeg_quality     the same training on the data as it is and compressed once more
  lr_rules         every LR rule's picks, each pair trained
  data_load        a data source's first (decoding) and cached load time
  device_check     which accelerator JAX found (the GPU session's guard)
  gpu_session.sh   the prepared call on a lent GPU (its `all` stage runs gpu_all)
  gpu_all          every part of the GPU evidence that fits a time budget, in one process
  carry_copy       the copy of the lossless images a GPU call carries, and what it costs
  step_digest, config_walk   that refactors keep the step's numbers; how often the config climbs back
"""
