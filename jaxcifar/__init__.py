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
  seeds       several seeds of one recipe: the mean and the spread
  parallel, records, console, errors, startup   devices; files; what a user sees; before JAX loads

Importing the package imports none of them and changes nothing in the environment,
so `import jaxcifar` is instant. The studies and benchmarks behind the README live
beside the package, in research/.
"""

from importlib import metadata

try:  # one version, pyproject.toml's, as the installed metadata has it
    __version__ = metadata.version("jaxcifar")
except metadata.PackageNotFoundError:  # a source tree on sys.path, never installed
    __version__ = "unknown"
