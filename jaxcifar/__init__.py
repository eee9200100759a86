"""jaxcifar: a fast, faithful CIFAR-10 ResNet-9 in JAX/Flax.

Modules, one concept each (dependencies point one way):
  config      every setting of a run, its presets and its flags
  model       the ResNet-9 network (Flax linen)
  data        CIFAR-10 from tfds, the official archive, image folders, or synthetic
  augment     the augmentation recipe on batches (NumPy; augment_device: the same in the step)
  loader      which images make which batch, on background threads
  schedule    the one-cycle learning-rate schedule
  steps       the train state and the jitted train and eval steps
  checkpoint  orbax checkpoints: save, resume anywhere, weights for Grad-CAM
  train       the training driver
  lr_range    the LR range test that picks LR_MAX and LR_MIN
  gradcam     Grad-CAM with jax.grad
  plots       every figure, drawn from arrays and run files
  seeds, evidence, bench/   several seeds; results into the repository; speed

Importing the package imports none of them, so `import jaxcifar` is instant. It
does one thing: on CPUs, XLA's YNNPACK fusions are switched off (below). It also
holds `exec_with_huge_pages`, which the training and LR range commands call first.
"""

import os
import sys
from collections.abc import Callable, Sequence

__version__ = "0.2.0"

# XLA:CPU (jaxlib 0.10) hands convolutions and dots to YNNPACK by default. Its
# convolution kernel gradients slow down more than linearly with the batch: on the
# 2-core development CPU, the training step at batch 512 ran 0.46x as fast with
# YNNPACK's convolutions as with Eigen's (results/cpu-step-variants.json).
# The flag only reaches XLA if it is set before JAX starts its CPU backend; a value
# the user set is kept, and JAXCIFAR_YNNPACK=1 keeps JAX's default.
YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"  # "=" with no value: YNNPACK off
if YNN_FLAG not in os.environ.get("XLA_FLAGS", "") and os.environ.get("JAXCIFAR_YNNPACK") != "1":
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {YNN_FLAG}=".strip()


# XLA:CPU takes the step's large temporaries from glibc's malloc afresh every step, and
# the kernel hands them over 4 KB at a time: at width 64 and batch 512 on the 2-core
# development CPU, 640,000 page faults and 1.3 s of kernel time per training step. With
# glibc asking for transparent huge pages (madvise), 15,000-28,000 faults and 0.5-0.65 s:
# the step 1.09x as fast (4.26 -> 3.92 s, the medians of 3 interleaved rounds of 5 steps,
# one process each, timed ad hoc), its numbers unchanged.
HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"


def exec_with_huge_pages(module: str, argv: Sequence[str], execve: Callable[..., None] = os.execve) -> None:
    """Starts `python -m module argv` again with glibc's malloc on transparent huge pages.

    glibc reads GLIBC_TUNABLES only when a process starts, hence the restart (the same
    process id, so signals and exit statuses are those of the command). Nothing happens
    off Linux, where GLIBC_TUNABLES is set already (a restarted process, or the user's
    choice), or with JAXCIFAR_HUGE_PAGES=0. Other C libraries ignore the variable.
    """
    if sys.platform != "linux" or "GLIBC_TUNABLES" in os.environ or os.environ.get("JAXCIFAR_HUGE_PAGES") == "0":
        return
    execve(sys.executable, [sys.executable, "-m", module, *argv], {**os.environ, "GLIBC_TUNABLES": HUGE_PAGES_TUNABLE})
