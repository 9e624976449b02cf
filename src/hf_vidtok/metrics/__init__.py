"""Video quality metrics: PSNR, SSIM, LPIPS (VGG) and FVD (I3D), in plain torch.

Videos are ``(B, C, T, H, W)`` floats in ``[0, 1]``. Network weights load from local
safetensors files or, when a repo id is given, the Hugging Face Hub; see the converters
``hf_vidtok.metrics.convert_lpips_weights`` and ``hf_vidtok.metrics.convert_i3d_weights``.
``evaluate``-compatible wrappers live in ``hf_vidtok.metrics.evaluate_modules`` (optional extra,
not imported here); ``python -m hf_vidtok.metrics.evaluate_folders`` compares two folders.
"""

from .frechet import FrechetStatistics, frechet_distance, symmetric_matrix_sqrt, trace_sqrt_product
from .fvd import FVD, preprocess_for_i3d
from .i3d import I3D_WEIGHTS_NAME, InceptionI3D
from .image_quality import psnr, ssim
from .lpips_vgg import LPIPS, LPIPS_WEIGHTS_NAME, VGG16Features

__all__ = [
    "psnr",
    "ssim",
    "LPIPS",
    "VGG16Features",
    "LPIPS_WEIGHTS_NAME",
    "InceptionI3D",
    "I3D_WEIGHTS_NAME",
    "FVD",
    "preprocess_for_i3d",
    "FrechetStatistics",
    "frechet_distance",
    "symmetric_matrix_sqrt",
    "trace_sqrt_product",
]
