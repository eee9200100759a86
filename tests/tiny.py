"""The tiny run the tests share: width 4, synthetic data, batches of 64.

A second or two per epoch on 2 CPU cores. Tests vary it with {**TINY_RUN, ...}.
"""

TINY_RUN = {
    "data": "synthetic",
    "width": 4,
    "batch_size": 64,
    "epochs": 2,
    "peak_epoch": 1.0,
    "lr_max": 0.05,
    "progress": False,
    "gradcam": False,
}
