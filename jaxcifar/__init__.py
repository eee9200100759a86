"""jaxcifar: a fast, faithful CIFAR-10 ResNet-9 in JAX/Flax.

Modules, one concept each (dependencies point one way):
  model     the ResNet-9 network (Flax linen)
  data      CIFAR-10 from tfds, the official archive, image folders, or synthetic
  augment   host-side augmentation and the batch iterator (NumPy, no JAX)
  schedule  the one-cycle learning-rate schedule
  train     train state, jitted steps, checkpoints, and the training driver
  lr_range  the LR range test that picks LR_MAX
  gradcam   Grad-CAM with jax.grad
  plots     every figure, drawn from arrays and run files

Importing the package imports none of them, so `import jaxcifar` is instant.
"""

__version__ = "0.1.0"
