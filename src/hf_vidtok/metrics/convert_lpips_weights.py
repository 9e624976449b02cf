"""Build the LPIPS (VGG) safetensors file from torchvision's VGG16 weights and ``lpips``' heads.

Sources (all read with ``torch.load(weights_only=True)`` or safetensors):

* ``--vgg``: a torchvision ``vgg16`` state dict (``features.<i>.weight``; ``classifier.*`` is
  dropped), e.g. ``vgg16-397923af.pth``;
* ``--heads``: the ``lpips`` package's ``weights/v0.1/vgg.pth`` (``lin<k>.model.1.weight``);
* or ``--lpips_state_dict``: one full ``lpips.LPIPS(net="vgg")`` state dict
  (``net.slice<s>.<i>.*`` + ``lin<k>.model.1.weight``), optionally under a prefix such as the
  ``perceptual_loss.`` of an official LARP training checkpoint's ``loss.sd`` (``--prefix``).

Usage::

    python -m hf_vidtok.metrics.convert_lpips_weights --vgg vgg16-397923af.pth \
        --heads lpips/weights/v0.1/vgg.pth --output lpips_vgg/  [--push_to_hub user/lpips-vgg]
"""

from __future__ import annotations

import argparse
import os
import re

import torch

from .lpips_vgg import _LPIPS_CHANNELS, _SCALE, _SHIFT, LPIPS, LPIPS_WEIGHTS_NAME, VGG16_CONV_INDICES

__all__ = ["load_state_dict_file", "convert_lpips_state_dicts", "main"]

_FEATURE_RE = re.compile(r"^features\.(\d+)\.(weight|bias)$")
_SLICE_RE = re.compile(r"^net\.slice\d\.(\d+)\.(weight|bias)$")
_HEAD_RE = re.compile(r"^lins?\.?(\d)\.model\.(\d)\.weight$")


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a flat tensor dict from ``.safetensors`` or a torch pickle (``weights_only=True``)."""
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(obj).__name__})")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def convert_lpips_state_dicts(
    vgg_state_dict: dict[str, torch.Tensor] | None = None,
    heads_state_dict: dict[str, torch.Tensor] | None = None,
    lpips_state_dict: dict[str, torch.Tensor] | None = None,
    prefix: str = "",
) -> dict[str, torch.Tensor]:
    """Map source keys to :class:`~hf_vidtok.metrics.lpips_vgg.LPIPS` keys.

    Give either ``vgg_state_dict`` + ``heads_state_dict`` or ``lpips_state_dict``. Every target
    key must be filled and every source tensor used (or known to be ignorable: torchvision's
    ``classifier.*``, lpips' ``scaling_layer.*`` constants, which are checked); otherwise a
    ``ValueError`` lists the offending keys.
    """
    if lpips_state_dict is not None:
        if vgg_state_dict is not None or heads_state_dict is not None:
            raise ValueError("give either `lpips_state_dict` or `vgg_state_dict` + `heads_state_dict`, not both")
        sources = [{k[len(prefix):]: v for k, v in lpips_state_dict.items() if k.startswith(prefix)}]
        if not sources[0]:
            raise ValueError(f"no key of `lpips_state_dict` starts with the prefix {prefix!r}")
    else:
        if vgg_state_dict is None or heads_state_dict is None:
            raise ValueError("both `vgg_state_dict` and `heads_state_dict` are required")
        sources = [vgg_state_dict, heads_state_dict]

    out: dict[str, torch.Tensor] = {}
    unused: list[str] = []
    for sd in sources:
        for key, value in sd.items():
            m = _FEATURE_RE.match(key) or _SLICE_RE.match(key)
            if m:
                out[f"vgg.features.{int(m.group(1))}.{m.group(2)}"] = value
                continue
            m = _HEAD_RE.match(key)
            if m:
                target = f"lins.{int(m.group(1))}.weight"
                # lpips.LPIPS stores every head twice (``lin<k>`` and ``lins.<k>``): they must agree
                if target in out and not torch.equal(out[target], value):
                    raise ValueError(f"`{key}` disagrees with another copy of the same LPIPS head")
                out[target] = value
                continue
            if key.startswith("classifier."):
                continue
            if key in ("scaling_layer.shift", "scaling_layer.scale"):
                ref = torch.tensor(_SHIFT if key.endswith("shift") else _SCALE)
                if not torch.allclose(value.float().flatten(), ref, atol=1e-6):
                    raise ValueError(f"`{key}` = {value.flatten().tolist()} differs from the LPIPS v0.1 constants")
                continue
            unused.append(key)

    expected = LPIPS().state_dict()
    missing = sorted(set(expected) - set(out))
    extra = sorted(set(out) - set(expected))
    if missing or extra or unused:
        raise ValueError(f"LPIPS conversion: missing target keys {missing}, unknown keys {sorted(unused) + extra}")
    for key, ref in expected.items():
        if tuple(out[key].shape) != tuple(ref.shape):
            raise ValueError(f"`{key}` has shape {tuple(out[key].shape)}, expected {tuple(ref.shape)}")
        out[key] = out[key].detach().to(torch.float32).contiguous()
    assert len(VGG16_CONV_INDICES) * 2 + len(_LPIPS_CHANNELS) == len(out)
    return out


def _default_heads_path() -> str | None:
    import importlib.util

    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "weights", "v0.1", "vgg.pth")
    return path if os.path.isfile(path) else None


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vgg", help="torchvision vgg16 state dict (.pth or .safetensors)")
    parser.add_argument("--heads", help="lpips v0.1 vgg.pth (default: the installed lpips package's file)")
    parser.add_argument("--lpips_state_dict", help="a full lpips.LPIPS(net='vgg') state dict instead of --vgg/--heads")
    parser.add_argument("--prefix", default="", help="key prefix inside --lpips_state_dict, e.g. 'perceptual_loss.'")
    parser.add_argument("--output", required=True, help="output folder (or a .safetensors file path)")
    parser.add_argument("--push_to_hub", default=None, help="optional Hub repo id to upload the file to")
    args = parser.parse_args(argv)

    if args.lpips_state_dict:
        sd = convert_lpips_state_dicts(lpips_state_dict=load_state_dict_file(args.lpips_state_dict), prefix=args.prefix)
    else:
        heads = args.heads or _default_heads_path()
        if not args.vgg or not heads:
            parser.error("--vgg and --heads (or an installed lpips package) are required without --lpips_state_dict")
        sd = convert_lpips_state_dicts(load_state_dict_file(args.vgg), load_state_dict_file(heads))

    model = LPIPS()
    model.load_state_dict(sd, strict=True)
    from ..hub.publishing import save_weights_file

    return save_weights_file(model, args.output, LPIPS_WEIGHTS_NAME, push_to_hub=args.push_to_hub)


if __name__ == "__main__":
    main()
