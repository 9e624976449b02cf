"""Inception-v1 I3D (Carreira & Zisserman 2017) for FVD features, in plain torch.

Module and parameter names follow the widely used ``pytorch-i3d`` port (``Conv3d_1a_7x7.conv3d
.weight``, ``Mixed_3b.b1b.bn.running_mean``, ``logits.conv3d.bias``), so its checkpoints load
after :mod:`hf_vidtok.metrics.convert_i3d_weights` (which also reads the StyleGAN-V TorchScript
file). Convolutions and max pools use TensorFlow "SAME" padding computed from the input size;
batch norm has eps 1e-3. The 400-d output of :meth:`InceptionI3D.forward` is the logit layer
averaged over time, the feature the common FVD protocol uses.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn


__all__ = ["InceptionI3D", "I3D_WEIGHTS_NAME", "same_padding_3d"]

I3D_WEIGHTS_NAME = "i3d_kinetics400.safetensors"

# (name, in-channel source, [b0, b1a, b1b, b2a, b2b, b3b]) of the nine inception blocks.
_MIXED = (
    ("Mixed_3b", (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", (384, 192, 384, 48, 128, 128)),
)


def same_padding_3d(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    """Zero-pad ``(B, C, T, H, W)`` as TensorFlow's ``padding="SAME"`` (extra pixel at the end)."""
    pads = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pads += [total // 2, total - total // 2]
    if any(pads):
        x = F.pad(x, pads)
    return x


class Unit3D(nn.Module):
    """``conv3d`` (SAME padding) -> optional ``bn`` (eps 1e-3) -> optional ReLU."""

    def __init__(self, in_channels, out_channels, kernel=(1, 1, 1), stride=(1, 1, 1), use_bn=True, bias=False, relu=True):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01) if use_bn else None

    def forward(self, x):
        x = self.conv3d(same_padding_3d(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class MaxPool3dSame(nn.Module):
    """Max pool with TF "SAME" padding (zero padding is exact here: inputs follow a ReLU)."""

    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x):
        return F.max_pool3d(same_padding_3d(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionBlock(nn.Module):
    """Four branches: 1x1 | 1x1 -> 3x3x3 | 1x1 -> 3x3x3 | maxpool 3x3x3 -> 1x1, concatenated."""

    def __init__(self, in_channels: int, ch: tuple[int, ...]):
        super().__init__()
        self.b0 = Unit3D(in_channels, ch[0])
        self.b1a = Unit3D(in_channels, ch[1])
        self.b1b = Unit3D(ch[1], ch[2], kernel=(3, 3, 3))
        self.b2a = Unit3D(in_channels, ch[3])
        self.b2b = Unit3D(ch[3], ch[4], kernel=(3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, ch[5])
        self.out_channels = ch[0] + ch[2] + ch[4] + ch[5]

    def forward(self, x):
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


class InceptionI3D(nn.Module):
    """I3D RGB network. Input ``(B, 3, T, H, W)`` in ``[-1, 1]``, ``T >= 9`` and ``H, W >= 193``
    (224 in the FVD protocol); output ``(B, num_classes)`` logits averaged over time
    (``return_per_time=True`` gives ``(B, num_classes, T')``).

    ``width_divisor`` divides every channel count (1 = the real network); values > 1 only exist
    to build small random stand-ins for tests and benchmarks.
    """

    def __init__(self, num_classes: int = 400, in_channels: int = 3, width_divisor: int = 1):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"`num_classes` must be >= 1, got {num_classes}")
        if width_divisor < 1:
            raise ValueError(f"`width_divisor` must be >= 1, got {width_divisor}")
        self.num_classes, self.in_channels, self.width_divisor = num_classes, in_channels, width_divisor

        def c(n):
            return max(1, n // width_divisor)

        self.Conv3d_1a_7x7 = Unit3D(in_channels, c(64), kernel=(7, 7, 7), stride=(2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(c(64), c(64))
        self.Conv3d_2c_3x3 = Unit3D(c(64), c(192), kernel=(3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        in_ch = c(192)
        for name, ch in _MIXED:
            block = InceptionBlock(in_ch, tuple(c(v) for v in ch))
            self.add_module(name, block)
            in_ch = block.out_channels
            if name == "Mixed_3c":
                self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
            if name == "Mixed_4f":
                self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.logits = Unit3D(in_ch, num_classes, use_bn=False, bias=True, relu=False)
        self.feature_dim = num_classes
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        # A fixed feature extractor: batch norm always uses the stored statistics.
        return super().train(False)

    _ORDER = (
        "Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3",
        "Mixed_3b", "Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
        "Mixed_4f", "MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c",
    )  # fmt: skip

    def forward(self, x: torch.Tensor, return_per_time: bool = False) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 5 or x.shape[1] != self.in_channels:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"`x` must be (B, {self.in_channels}, T, H, W), got {shape}")
        if x.shape[2] < 9 or x.shape[3] < 193 or x.shape[4] < 193:
            raise ValueError(f"I3D needs T >= 9 and H, W >= 193 (224 in the FVD protocol), got {tuple(x.shape)}")
        for name in self._ORDER:
            x = getattr(self, name)(x)
        x = F.avg_pool3d(x, kernel_size=(2, 7, 7), stride=1)  # TF "VALID" average pool
        logits = self.logits(x).mean(dim=(3, 4))  # spatial size is 1 at 224 px; average otherwise
        return logits if return_per_time else logits.mean(dim=2)

    # ------------------------------------------------------------------ weights I/O
    def save_pretrained(self, save_directory: str | os.PathLike, filename: str = I3D_WEIGHTS_NAME) -> str:
        """Write the weights (and ``num_classes`` / ``width_divisor`` metadata) as safetensors."""
        os.makedirs(save_directory, exist_ok=True)
        path = os.path.join(save_directory, filename)
        sd = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        meta = {"format": "pt", "model": "i3d", "num_classes": str(self.num_classes), "width_divisor": str(self.width_divisor)}
        save_file(sd, path, metadata=meta)
        return path

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | os.PathLike,
        filename: str = I3D_WEIGHTS_NAME,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        token: str | bool | None = None,
    ) -> "InceptionI3D":
        """Load from a safetensors file, a folder holding ``filename``, or a Hub repo id (strict)."""
        from safetensors import safe_open

        from ..hub.loading import resolve_file

        path = resolve_file(path_or_repo_id, filename, revision=revision, cache_dir=cache_dir, token=token)
        with safe_open(path, framework="pt") as f:
            meta = dict(f.metadata() or {})
            sd = {key: f.get_tensor(key) for key in f.keys()}
        num_classes = int(meta.get("num_classes", sd["logits.conv3d.weight"].shape[0] if "logits.conv3d.weight" in sd else 400))
        model = cls(num_classes=num_classes, width_divisor=int(meta.get("width_divisor", 1)))
        missing, unexpected = model.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{path} is not an hf_vidtok I3D file: missing keys {sorted(missing)}, unexpected keys {sorted(unexpected)}"
            )
        return model
