"""LPIPS (VGG16 trunk, v0.1 linear heads) written in plain torch.

Parameter names: ``vgg.features.<i>.{weight,bias}`` use torchvision's ``vgg16().features``
indices, and ``lins.<k>.weight`` ``(1, C_k, 1, 1)`` are the ``lpips`` package's ``lin<k>``
heads, so :mod:`hf_vidtok.metrics.convert_lpips_weights` turns torchvision's VGG16 weights and
``lpips``' ``vgg.pth`` into one safetensors file that loads here with ``strict=True``.
"""

from __future__ import annotations

import os

import torch
from safetensors.torch import load_file, save_file
from torch import nn


__all__ = ["VGG16Features", "LPIPS", "LPIPS_WEIGHTS_NAME", "VGG16_CONV_INDICES", "VGG16_TAP_INDICES"]

LPIPS_WEIGHTS_NAME = "lpips_vgg.safetensors"
# torchvision vgg16 "D" configuration; "M" = 2x2 max pool.
_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
#: ``features`` indices holding a Conv2d (torchvision numbering).
VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
#: ReLU outputs LPIPS reads: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
VGG16_TAP_INDICES = (3, 8, 15, 22, 29)
_LPIPS_CHANNELS = (64, 128, 256, 512, 512)
# lpips v0.1 ScalingLayer constants (ImageNet statistics mapped to the [-1, 1] input range).
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


class VGG16Features(nn.Module):
    """torchvision's ``vgg16().features[:30]`` (up to relu5_3) returning the five LPIPS taps.

    ``forward(x (N, 3, H, W))`` -> list of 5 maps ``(N, C_k, H / 2**k, W / 2**k)``.
    """

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for v in _VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_ch, v, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                in_ch = v
        self.features = nn.Sequential(*layers)
        assert len(self.features) == 30

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in VGG16_TAP_INDICES:
                taps.append(x)
        return taps


class LPIPS(nn.Module):
    """Learned perceptual distance of Zhang et al. (2018), VGG variant, version 0.1.

    ``forward(input, target)`` takes images ``(N, 3, H, W)`` or videos ``(B, 3, T, H, W)`` with
    values in ``[0, 1]`` (mapped to ``[-1, 1]`` internally, i.e. the ``lpips`` package with
    ``normalize=True``) and returns ``(N,)`` per-image distances, or ``(B,)`` per-video means
    over frames. Values outside ``[0, 1]`` are not rejected so that unclamped reconstructions
    can be used in a training loss. The module is frozen (no parameter requires grad) and in
    eval mode; gradients still flow to the inputs.
    """

    def __init__(self):
        super().__init__()
        self.vgg = VGG16Features()
        self.lins = nn.ModuleList([nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in _LPIPS_CHANNELS])
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        # LPIPS has no train-time behaviour of its own (dropout in the heads is only used when the
        # heads are being learned); keep it in eval mode so it behaves as a fixed metric.
        return super().train(False)

    @staticmethod
    def _normalize(feat: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
        return feat / (feat.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)

    def _images(self, name: str, x) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"`{name}` must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() == 5:
            if x.shape[1] != 3:
                raise ValueError(f"`{name}` must be (B, 3, T, H, W), got shape {tuple(x.shape)}")
            return x.transpose(1, 2).reshape(-1, 3, x.shape[3], x.shape[4])
        if x.dim() == 4:
            if x.shape[1] != 3:
                raise ValueError(f"`{name}` must be (N, 3, H, W), got shape {tuple(x.shape)}")
            return x
        raise ValueError(f"`{name}` must be (N, 3, H, W) or (B, 3, T, H, W), got shape {tuple(x.shape)}")

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if input.shape != target.shape:
            raise ValueError(
                f"`input` and `target` must have the same shape, got {tuple(input.shape)} and {tuple(target.shape)}"
            )
        x = self._images("input", input)
        y = self._images("target", target)
        if x.shape[-1] < 16 or x.shape[-2] < 16:
            raise ValueError(f"LPIPS (VGG) needs frames of at least 16x16 pixels, got {x.shape[-2]}x{x.shape[-1]}")
        dtype = self.lins[0].weight.dtype
        x = ((2 * x - 1).to(dtype) - self.shift.to(dtype)) / self.scale.to(dtype)
        y = ((2 * y - 1).to(dtype) - self.shift.to(dtype)) / self.scale.to(dtype)
        feats = self.vgg(torch.cat([x, y], dim=0))
        n = x.shape[0]
        total = 0
        for lin, f in zip(self.lins, feats):
            d = (self._normalize(f[:n]) - self._normalize(f[n:])).pow(2)
            total = total + lin(d).mean(dim=(2, 3))
        dist = total.view(-1)
        if input.dim() == 5:
            dist = dist.view(input.shape[0], input.shape[2]).mean(dim=1)
        return dist

    # ------------------------------------------------------------------ weights I/O
    def save_pretrained(self, save_directory: str | os.PathLike, filename: str = LPIPS_WEIGHTS_NAME) -> str:
        """Write the weights as one safetensors file in ``save_directory``; returns its path."""
        os.makedirs(save_directory, exist_ok=True)
        path = os.path.join(save_directory, filename)
        sd = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(sd, path, metadata={"format": "pt", "model": "lpips_vgg", "version": "0.1"})
        return path

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | os.PathLike,
        filename: str = LPIPS_WEIGHTS_NAME,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        token: str | bool | None = None,
    ) -> "LPIPS":
        """Load from a safetensors file, a folder holding ``filename``, or a Hub repo id.

        Nothing is downloaded unless a Hub repo id is given. Loading is strict.
        """
        from ..hub.loading import resolve_file

        path = resolve_file(path_or_repo_id, filename, revision=revision, cache_dir=cache_dir, token=token)
        sd = load_file(path)
        model = cls()
        missing, unexpected = model.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{path} is not an hf_vidtok LPIPS file: missing keys {sorted(missing)}, unexpected keys {sorted(unexpected)}"
            )
        return model
