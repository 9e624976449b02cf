"""Eager single-token decode step of :class:`VideoARGenerator` with fused weights and preallocated buffers.

Why hand-written: in eager mode (CPU, or GPU without ``torch.compile``) a decode step is bound by the
weight reads of ``(rows, D) x (D, N)`` matmuls with few rows, plus the Python / dispatcher overhead of
the ~30 small ops per layer of the module path (views, transposes, dtype no-ops, temporaries).
``torch.compile`` removes the latter but does not pay off within one call on CPU. This step

* multiplies by SwiGLU's gate and up weights in one matmul (``[gate; up]`` concatenated once per
  set of weights; bit-identical to two matmuls) and reads the fused ``qkv_proj`` as before;
* writes every intermediate into buffers allocated once per generation (``torch.mm(..., out=)``,
  in-place norms / residuals), and the K/V cache at a host-int position (no index tensor);
* computes exactly the same floating-point operations in the same order as the module path
  (:meth:`VideoARGenerator._decode_step`), so its logits are bit-identical to it.

Layouts: hidden ``(R, D)``; cache ``(R, Hkv, L, Dh)`` per layer (:class:`StaticKVCache`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hf_vidtok.modules.kv_cache import StaticKVCache

__all__ = ["FusedDecodeStep", "fused_gate_up_weights"]


def fused_gate_up_weights(model) -> list[torch.Tensor]:
    """``[gate_proj.weight; up_proj.weight]`` ``(2I, D)`` of every layer, cached on the model and rebuilt
    when a weight changes (new storage or an in-place update bumps its version counter)."""
    key = tuple(
        (w.data_ptr(), w._version, w.dtype, w.device)
        for layer in model.layers
        for w in (layer.mlp.gate_proj.weight, layer.mlp.up_proj.weight)
    )
    cached = getattr(model, "_fused_gate_up_cache", None)
    if cached is None or cached[0] != key:
        with torch.no_grad():
            weights = [torch.cat([layer.mlp.gate_proj.weight, layer.mlp.up_proj.weight]) for layer in model.layers]
        cached = (key, weights)
        object.__setattr__(model, "_fused_gate_up_cache", cached)  # plain attribute, not a submodule/buffer
    return cached[1]


class FusedDecodeStep:
    """``step(tokens (R,) long, position: int, kv_length: int) -> logits (R, V) float32`` for a model in
    eval mode; the returned logits live in a buffer that the next call overwrites."""

    def __init__(self, model, rows: int, cache: StaticKVCache):
        cfg = model.config
        weight = model.embed_tokens.weight
        device, dtype = weight.device, weight.dtype
        self.model = model
        self.cache = cache
        self.dtype = dtype
        self.heads, self.kv_heads, self.head_dim = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        self.dim, self.inter = cfg.hidden_size, cfg.intermediate_size
        self.gqa = self.kv_heads != self.heads
        self.layers = []
        for layer, gate_up in zip(model.layers, fused_gate_up_weights(model)):
            self.layers.append(
                (
                    layer.input_layernorm.weight,
                    layer.input_layernorm.eps,
                    layer.self_attn.qkv_proj.weight.t(),
                    layer.self_attn.o_proj.weight.t(),
                    layer.post_attention_layernorm.weight,
                    layer.post_attention_layernorm.eps,
                    gate_up.t(),
                    layer.mlp.down_proj.weight.t(),
                )
            )
        self.norm_weight, self.norm_eps = model.norm.weight, model.norm.eps
        self.head_t = model.lm_head.weight.t()
        self.embed = weight
        self.positions = model.position_embedding[0]

        def buf(*shape, dt=dtype):
            return torch.empty(*shape, dtype=dt, device=device)

        kv = self.kv_heads * self.head_dim
        self.h = buf(rows, self.dim)
        self.x = buf(rows, self.dim)
        self.sq = buf(rows, self.dim, dt=torch.float32)
        self.tmp = buf(rows, self.dim)
        self.qkv = buf(rows, self.dim + 2 * kv)
        self.gate_up = buf(rows, 2 * self.inter)
        self.act = buf(rows, self.inter)
        self.logits = buf(rows, cfg.output_vocab_size)

    def _rms_norm(self, weight: torch.Tensor, eps: float) -> torch.Tensor:
        """``self.x = RMSNorm(self.h)`` with the exact op sequence of :class:`~hf_vidtok.modules.rms_norm.RMSNorm`."""
        h = self.h
        if h.dtype == torch.float32:
            torch.mul(h, h, out=self.sq)
            scale = torch.rsqrt(self.sq.mean(-1, keepdim=True).add_(eps))
            torch.mul(h, scale, out=self.x)
            return self.x.mul_(weight)
        hf = h.float()
        hf = hf * torch.rsqrt(hf.pow(2).mean(-1, keepdim=True) + eps)
        return torch.mul(hf.type_as(h), weight, out=self.x)

    def __call__(self, tokens: torch.Tensor, position: int, kv_length: int) -> torch.Tensor:
        rows = self.h.shape[0]
        d, kv, hd = self.dim, self.kv_heads * self.head_dim, self.head_dim
        torch.index_select(self.embed, 0, tokens, out=self.h)
        self.h.add_(self.positions[position].to(self.dtype))
        for i, (w_in, eps_in, w_qkv, w_o, w_post, eps_post, w_gu, w_down) in enumerate(self.layers):
            x = self._rms_norm(w_in, eps_in)
            qkv = torch.mm(x, w_qkv, out=self.qkv)
            q = qkv[:, :d].view(rows, self.heads, 1, hd)
            k_cache, v_cache = self.cache.keys[i], self.cache.values[i]
            k_cache[:, :, position].copy_(qkv[:, d : d + kv].view(rows, self.kv_heads, hd))
            v_cache[:, :, position].copy_(qkv[:, d + kv :].view(rows, self.kv_heads, hd))
            out = F.scaled_dot_product_attention(
                q.to(k_cache.dtype), k_cache[:, :, :kv_length], v_cache[:, :, :kv_length], enable_gqa=self.gqa
            )
            torch.mm(out.reshape(rows, d), w_o, out=self.tmp)
            self.h.add_(self.tmp)
            x = self._rms_norm(w_post, eps_post)
            torch.mm(x, w_gu, out=self.gate_up)
            gate = F.silu(self.gate_up[:, : self.inter], inplace=True)  # in the buffer: no temporary
            torch.mul(gate, self.gate_up[:, self.inter :], out=self.act)
            torch.mm(self.act, w_down, out=self.tmp)
            self.h.add_(self.tmp)
        x = self._rms_norm(self.norm_weight, self.norm_eps)
        if self.logits.dtype == torch.float32:
            return torch.mm(x, self.head_t, out=self.logits)
        return torch.mm(x, self.head_t, out=self.logits).float()
