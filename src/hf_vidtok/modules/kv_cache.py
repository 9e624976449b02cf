"""Preallocated (static) key/value cache for autoregressive decoding."""

from __future__ import annotations

import torch

__all__ = ["StaticKVCache"]


class StaticKVCache:
    """Fixed-size K/V buffers for all layers of a decoder, written in place.

    Layout: ``keys[i]`` and ``values[i]`` (one tensor per layer, so that a compiled step mutates
    whole graph inputs rather than views) are ``(batch, num_kv_heads, max_length, head_dim)``.
    :meth:`update` writes ``(batch, num_kv_heads, S, head_dim)`` new entries at the positions
    given by a LongTensor ``positions (S,)`` with ``index_copy_`` (no host sync, fixed shapes: the
    write is capturable in a CUDA graph and traceable by ``torch.compile``) and returns views of the
    first ``kv_length`` cached positions of that layer.

    The buffers are allocated once per generation call and released with the object.
    """

    def __init__(
        self,
        num_layers: int,
        batch_size: int,
        num_kv_heads: int,
        max_length: int,
        head_dim: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ):
        if min(num_layers, batch_size, num_kv_heads, max_length, head_dim) <= 0:
            raise ValueError(
                "StaticKVCache sizes must be positive, got num_layers="
                f"{num_layers}, batch_size={batch_size}, num_kv_heads={num_kv_heads}, "
                f"max_length={max_length}, head_dim={head_dim}"
            )
        shape = (batch_size, num_kv_heads, max_length, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.max_length = max_length

    @property
    def batch_size(self) -> int:
        return self.keys[0].shape[0]

    def update(
        self,
        layer_idx: int,
        positions: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        kv_length: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write ``key``/``value`` ``(B, Hkv, S, Dh)`` at ``positions (S,)`` of layer ``layer_idx``;
        return that layer's ``(B, Hkv, kv_length, Dh)`` key and value views."""
        k_layer = self.keys[layer_idx]
        v_layer = self.values[layer_idx]
        k_layer.index_copy_(2, positions, key.to(k_layer.dtype))
        v_layer.index_copy_(2, positions, value.to(v_layer.dtype))
        return k_layer[:, :, :kv_length], v_layer[:, :, :kv_length]
