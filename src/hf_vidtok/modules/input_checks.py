"""The one validation of pixel inputs: videos are ``(B, C, T, H, W)`` floating-point tensors in ``[0, 1]``.

Every public entry point that takes pixels goes through :func:`check_pixel_values`: the tokenizers' ``encode`` /
``forward`` (``LarpTokenizer``, ``EvatokTokenizer``), ``EvatokRouter`` (``forward`` / ``select``), the pipelines'
video inputs and the metrics. It rejects, with an error naming the argument: a non-tensor, an integer / bool dtype
(``uint8`` frames need ``x.float() / 255``), a wrong rank or shape, an empty batch, NaN or inf, and values outside
``[0, 1]`` (one NaN pixel would otherwise turn every token of a clip into code 0). The value checks cost one pass
over the tensor on CPU; on an accelerator, and on any device while ``torch.compile`` traces, they are a device-side
assertion inside the graph (``torch._assert_async``: no host synchronisation, no graph break).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["check_pixel_values"]


def check_pixel_values(
    pixel_values,
    *,
    name: str = "pixel_values",
    shape: Sequence[int | None] | None = None,
    check_range: bool = True,
    range_tolerance: float = 0.0,
) -> torch.Tensor:
    """Validate a video batch and return it unchanged.

    Args:
        pixel_values: ``(B, C, T, H, W)`` floating-point tensor in ``[0, 1]``.
        name: the argument's name in the error messages.
        shape: the expected ``(C, T, H, W)``; a None entry accepts any size.
        check_range: also check that every value is finite and in ``[0, 1]``.
        range_tolerance: allowance outside ``[0, 1]`` (round-off of a clamped low-precision decode).

    Raises:
        TypeError: not a tensor, or not floating point.
        ValueError: wrong rank or shape, empty batch, NaN / inf, values outside ``[0, 1]``.
    """
    if not torch.is_tensor(pixel_values):
        raise TypeError(f"`{name}` must be a torch.Tensor (B, C, T, H, W) in [0, 1], got {type(pixel_values).__name__}")
    if not pixel_values.is_floating_point():
        raise TypeError(
            f"`{name}` must be a floating-point tensor with values in [0, 1], got dtype {pixel_values.dtype} "
            "(convert uint8 frames with `x.float() / 255`)"
        )
    expected = "(B, C, T, H, W)" if shape is None else "(B, " + ", ".join("*" if s is None else str(s) for s in shape) + ")"
    if pixel_values.dim() != 5:
        raise ValueError(f"`{name}` must have 5 dims (B, C, T, H, W) = {expected}, got shape {tuple(pixel_values.shape)}")
    if pixel_values.shape[0] == 0:
        raise ValueError(f"`{name}` must hold at least one clip (batch size 0)")
    if shape is not None:
        got = tuple(pixel_values.shape)
        channels, frames, height, width = shape
        if channels is not None and got[1] != channels:
            raise ValueError(f"`{name}` must have {channels} channels in dim 1 of {expected}, got shape {got}")
        if frames is not None and got[2] != frames:
            raise ValueError(f"`{name}` must have {frames} frames in dim 2 of {expected}, got shape {got}")
        if (height is not None and got[3] != height) or (width is not None and got[4] != width):
            size = f"{'*' if height is None else height}x{'*' if width is None else width}"
            raise ValueError(f"`{name}` frames must be {size} (H x W) as in {expected}, got {got[3]}x{got[4]}")
    if check_range and pixel_values.numel():
        low, high = -range_tolerance, 1.0 + range_tolerance
        if pixel_values.device.type == "cpu" and not torch.compiler.is_compiling():
            lo, hi = (float(v) for v in torch.aminmax(pixel_values.detach()))
            if math.isnan(lo) or math.isnan(hi):
                raise ValueError(f"`{name}` contains NaN")
            if not (lo >= low and hi <= high):
                raise ValueError(f"`{name}` must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
        else:
            torch._assert_async(
                ((pixel_values >= low) & (pixel_values <= high)).all(),
                f"`{name}` must lie in [0, 1] and hold no NaN",
            )
    return pixel_values
