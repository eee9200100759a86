"""jaxcifar: a fast, faithful CIFAR-10 ResNet-9 in JAX/Flax.

Modules, one concept each (dependencies point one way):
  config      every setting of a run and its presets (flags: the command line made from it)
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
  predict     a trained run on your own images: load_run, predict
  plots       every figure, drawn from arrays and run files
  seeds       several seeds of one recipe: the mean and the spread
  show        the network's layers, the LR triangle, augmented samples (python -m jaxcifar.show)
  parallel, records, console, errors, startup   devices; files; what a user sees; before JAX loads

Importing the package imports none of them and changes nothing in the environment,
so `import jaxcifar` is instant; `jaxcifar.TrainConfig`, `jaxcifar.train_and_evaluate`
and `jaxcifar.load_run` import theirs when first used:

    import jaxcifar
    from jaxcifar.predict import predict
    result = jaxcifar.train_and_evaluate(jaxcifar.TrainConfig(quick=True, out="runs/q"))
    run = jaxcifar.load_run("runs/q")
    probabilities = predict(run.model, run.variables, images)  # uint8 images of any size
 The studies and benchmarks behind the README live
beside the package, in research/.
"""

from importlib import metadata

try:  # one version, pyproject.toml's, as the installed metadata has it
    __version__ = metadata.version("jaxcifar")
except metadata.PackageNotFoundError:  # a source tree on sys.path, never installed
    __version__ = "unknown"

# The Python API, imported on first use (PEP 562), so that `import jaxcifar` stays instant.
_API = {
    "TrainConfig": ("jaxcifar.config", "TrainConfig"),
    "train_and_evaluate": ("jaxcifar.train", "train_and_evaluate"),
    "load_run": ("jaxcifar.predict", "load_run"),
}  # (jaxcifar.predict, the module, holds predict: an attribute of that name would be shadowed by it)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'jaxcifar' has no attribute {name!r}")
    import importlib

    module, attribute = _API[name]
    return getattr(importlib.import_module(module), attribute)
