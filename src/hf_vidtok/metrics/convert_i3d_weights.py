"""Convert I3D (Kinetics-400, RGB) checkpoints to hf_vidtok's safetensors file.

Two sources are understood:

* ``pytorch-i3d`` state dicts (``rgb_imagenet.pt``, ``rgb_charades.pt``...), read with
  ``torch.load(weights_only=True)``: their key names are ours, so they map 1:1.
* TorchScript archives such as StyleGAN-V's ``i3d_torchscript.pt`` (the TF-Hub I3D used by
  the FVD papers). **TorchScript is never executed**: ``torch.jit.load`` would run the
  archive's code, so :func:`read_torchscript_tensors` opens the zip itself and unpickles
  ``data.pkl`` with a restricted unpickler that only rebuilds tensors (class objects become
  inert attribute holders, every other global is refused). The tensors are then matched to
  our network unit by unit (see :func:`convert_i3d_state_dict`).

Usage::

    python -m hf_vidtok.metrics.convert_i3d_weights --input i3d_torchscript.pt --output i3d/
    python -m hf_vidtok.metrics.convert_i3d_weights --input rgb_imagenet.pt --output i3d/
"""

from __future__ import annotations

import argparse
import collections
import os
import pickle
import re
import zipfile

import torch

from .i3d import I3D_WEIGHTS_NAME, InceptionI3D

__all__ = ["read_torchscript_tensors", "convert_i3d_state_dict", "load_i3d_source", "main"]

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}  # fmt: skip


class _ScriptObject:
    """Inert stand-in for a pickled TorchScript class instance: it only keeps its state."""

    _qualified_name = "?"

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.__dict__["_state"] = state


class _StorageType:
    def __init__(self, dtype):
        self.dtype = dtype


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    if storage.numel() == 0:
        return torch.empty(size, dtype=storage.dtype)
    return torch.as_strided(storage, tuple(size), tuple(stride), storage_offset).clone()


def _rebuild_parameter(data, requires_grad=False, hooks=None, *args):
    return data


class _TensorOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str):
        super().__init__(file)
        self._archive, self._prefix, self._storages = archive, prefix, {}

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch.jit._pickle" and name.startswith("build_"):
            return lambda *values: values[0] if len(values) == 1 else list(values)
        if module == "torch.jit._pickle" and name == "restore_type_tag":
            return lambda value, _type: value
        if module == "__torch__" or module.startswith("__torch__."):
            return type(name, (_ScriptObject,), {"_qualified_name": f"{module}.{name}"})
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from a TorchScript archive")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {storage_type!r}")
        if key not in self._storages:
            raw = self._archive.read(f"{self._prefix}data/{key}")
            flat = torch.frombuffer(bytearray(raw), dtype=storage_type.dtype) if raw else torch.empty(0, dtype=storage_type.dtype)
            if flat.numel() < numel:
                raise pickle.UnpicklingError(f"storage {key} holds {flat.numel()} elements, expected {numel}")
            self._storages[key] = flat
        return self._storages[key]


def _flatten(obj, path: str, out: dict, seen: set):
    if isinstance(obj, torch.Tensor):
        out[path] = obj
    elif isinstance(obj, _ScriptObject):
        if id(obj) in seen:
            return
        seen.add(id(obj))
        _flatten(obj.__dict__.get("_state"), path, out, seen)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, f"{path}.{k}" if path else str(k), out, seen)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _flatten(v, f"{path}.{i}" if path else str(i), out, seen)


def read_torchscript_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Every tensor attribute of a TorchScript archive, ``{"dotted.attribute.path": tensor}``,
    in the archive's attribute order, without executing any of the archive's code."""
    with zipfile.ZipFile(os.fspath(path)) as archive:
        names = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
        if len(names) != 1:
            raise ValueError(f"{path} is not a TorchScript archive (no single <name>/data.pkl)")
        prefix = names[0][: -len("data.pkl")]
        with archive.open(names[0]) as f:
            root = _TensorOnlyUnpickler(f, archive, prefix).load()
    out: dict[str, torch.Tensor] = {}
    _flatten(root, "", out, set())
    return out


# ---------------------------------------------------------------------------------------------
# Mapping onto our units
# ---------------------------------------------------------------------------------------------


def _target_units(model: InceptionI3D) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """``[(unit prefix, {role: tensor})]`` in network order; roles: w, b, gamma, beta, mean, var."""
    sd = model.state_dict()
    units = []
    for key in sd:
        if key.endswith("conv3d.weight"):
            prefix = key[: -len("conv3d.weight")]
            roles = {"w": sd[key]}
            if prefix + "conv3d.bias" in sd:
                roles["b"] = sd[prefix + "conv3d.bias"]
            if prefix + "bn.weight" in sd:
                roles.update(
                    gamma=sd[prefix + "bn.weight"], beta=sd[prefix + "bn.bias"],
                    mean=sd[prefix + "bn.running_mean"], var=sd[prefix + "bn.running_var"],
                )  # fmt: skip
            units.append((prefix, roles))
    return units


_ROLE_KEYS = {"w": "conv3d.weight", "b": "conv3d.bias", "gamma": "bn.weight", "beta": "bn.bias",
              "mean": "bn.running_mean", "var": "bn.running_var"}  # fmt: skip


def _role_of(name: str, tensor: torch.Tensor, unit_has_bn: bool) -> str | None:
    leaf = re.split(r"[./]", name.removesuffix(":0").lower())[-1]
    if "num_batches" in leaf:
        return None
    if "mean" in leaf:
        return "mean"
    if "var" in leaf:
        return "var"
    if leaf in ("gamma", "scale") or (leaf in ("weight", "w") and tensor.dim() == 1):
        return "gamma"
    if leaf in ("beta", "offset"):
        return "beta"
    if leaf in ("bias", "b"):
        return "beta" if unit_has_bn else "b"
    raise ValueError(f"cannot tell what `{name}` {tuple(tensor.shape)} is")


def convert_i3d_state_dict(source: dict[str, torch.Tensor], width_divisor: int = 1) -> dict[str, torch.Tensor]:
    """Map a pytorch-i3d state dict or TorchScript tensor dict onto :class:`InceptionI3D` keys.

    * Keys already named as ours (pytorch-i3d; an optional ``module.`` prefix is stripped) are
      taken as they are; missing ``num_batches_tracked`` buffers are filled with 0.
    * Otherwise tensors are walked in source order: each 5-D tensor starts the next conv unit of
      the network (Conv3d_1a ... Mixed_5c, logits) and the 1-D tensors after it are that unit's
      bias / batch-norm tensors, recognised by name (``*mean*``, ``*var*``, ``gamma``/``weight``,
      ``beta``/``bias``). TF-layout kernels ``(kT, kH, kW, in, out)`` are transposed; a missing
      batch-norm scale (TF's ``BatchNorm(create_scale=False)``) becomes 1. Every shape is
      checked, every target filled, every source tensor used, or a ``ValueError`` says which.
    """
    model = InceptionI3D(width_divisor=width_divisor)
    expected = model.state_dict()
    src = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in source.items()}
    if set(expected) - {k for k in expected if k.endswith("num_batches_tracked")} <= set(src):
        out = {}
        unknown = sorted(k for k in src if k not in expected)
        if unknown:
            raise ValueError(f"I3D conversion: unexpected keys {unknown}")
        for k, ref in expected.items():
            v = src.get(k, torch.zeros((), dtype=torch.long) if k.endswith("num_batches_tracked") else None)
            if tuple(v.shape) != tuple(ref.shape):
                raise ValueError(f"`{k}` has shape {tuple(v.shape)}, expected {tuple(ref.shape)}")
            out[k] = v.to(ref.dtype).contiguous()
        return out

    units = _target_units(model)
    groups: list[dict[str, tuple[str, torch.Tensor]]] = []
    for name, tensor in src.items():
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            continue
        if tensor.dim() == 5:
            groups.append({"w": (name, tensor)})
            continue
        if not groups:
            raise ValueError(f"`{name}` comes before any convolution kernel")
        idx = len(groups) - 1
        role = _role_of(name, tensor, idx >= len(units) or "mean" in units[idx][1])
        if role is None:
            continue
        if role in groups[-1]:
            raise ValueError(f"unit {idx} has two `{role}` tensors (second: `{name}`)")
        groups[-1][role] = (name, tensor)
    if len(groups) != len(units):
        raise ValueError(f"found {len(groups)} convolution kernels in the source, the I3D network has {len(units)}")

    out = {}
    for (prefix, roles), group in zip(units, groups):
        if "gamma" in roles and "gamma" not in group:
            group["gamma"] = ("<ones>", torch.ones_like(roles["gamma"]))
        missing = sorted(set(roles) - set(group))
        extra = sorted(set(group) - set(roles))
        if missing or extra:
            raise ValueError(f"unit `{prefix}`: missing {missing}, unexpected {[group[r][0] for r in extra]}")
        for role, ref in roles.items():
            name, t = group[role]
            if role == "w" and tuple(t.shape) != tuple(ref.shape) and tuple(t.permute(4, 3, 0, 1, 2).shape) == tuple(ref.shape):
                t = t.permute(4, 3, 0, 1, 2)
            if tuple(t.shape) != tuple(ref.shape):
                raise ValueError(f"`{name}` -> `{prefix}{_ROLE_KEYS[role]}`: shape {tuple(t.shape)}, expected {tuple(ref.shape)}")
            out[prefix + _ROLE_KEYS[role]] = t.to(ref.dtype).contiguous()
    for k, ref in expected.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.zeros_like(ref)
    assert set(out) == set(expected)
    return out


def load_i3d_source(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a TorchScript archive (tensors only) or a pytorch-i3d/safetensors state dict."""
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            is_script = any(n.endswith("/code/__torch__.py") or "/code/__torch__/" in n for n in z.namelist())
        if is_script:
            return read_torchscript_tensors(path)
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(obj).__name__})")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description="Convert an I3D checkpoint to hf_vidtok safetensors")
    parser.add_argument("--input", required=True, help="i3d_torchscript.pt, a pytorch-i3d .pt, or .safetensors")
    parser.add_argument("--output", required=True, help="output folder (or a .safetensors file path)")
    parser.add_argument("--push_to_hub", default=None, help="optional Hub repo id to upload the file to")
    args = parser.parse_args(argv)

    sd = convert_i3d_state_dict(load_i3d_source(args.input))
    model = InceptionI3D()
    model.load_state_dict(sd, strict=True)
    from ..hub.publishing import save_weights_file

    return save_weights_file(model, args.output, I3D_WEIGHTS_NAME, push_to_hub=args.push_to_hub)


if __name__ == "__main__":
    main()
