"""Eager single-token decode step of :class:`VideoARGenerator` with fused weights and preallocated buffers.

Why hand-written: in eager mode (CPU, or GPU without ``torch.compile``) a decode step is bound by the
weight reads of ``(rows, D) x (D, N)`` matmuls with few rows, plus the Python / dispatcher overhead of
the ~30 small ops per layer of the module path (views, transposes, dtype no-ops, temporaries).
``torch.compile`` removes the latter but does not pay off within one call on CPU. This step

* multiplies by SwiGLU's gate and up weights in one matmul (``[gate; up]`` concatenated once per
  set of weights; bit-identical to two matmuls) and reads the fused ``qkv_proj`` as before;
* writes every intermediate into buffers allocated once per generation (``torch.mm(..., out=)``,
  in-place norms / residuals), and the K/V cache at a host-int position (no index tensor);
* computes the same floating-point operations in the same order as the module path
  (:meth:`VideoARGenerator._decode_step`), so its logits equal it to float rounding (the BLAS picks its
  blocking by shape);
* with ``matmul_dtype=torch.bfloat16`` reads bf16 copies of the weights (made once, cached on the model) for the
  matrix products and keeps everything else (norms, residual stream, attention, KV cache, logits) in the model
  dtype: a decode step with few rows is bound by the weight reads, so on a CPU that multiplies bf16 natively
  (AVX512-BF16, AMX) it runs close to twice as fast; the samples' NLL is checked by ``bench/bench_generate.py``.

Layouts: hidden ``(R, D)``; cache ``(R, Hkv, L, Dh)`` per layer (:class:`StaticKVCache`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hf_vidtok.modules.kv_cache import StaticKVCache

__all__ = ["FusedDecodeStep", "MATMUL_DTYPES", "fused_gate_up_weights", "step_weights"]

#: ``matmul_dtype`` values of :class:`FusedDecodeStep` besides None (the model dtype).
MATMUL_DTYPES = (torch.bfloat16,)


def _cached(model, name: str, sources: list[torch.Tensor], build):
    """``build()`` cached on ``model`` under ``name``, rebuilt when a source weight changes (new storage or an
    in-place update bumps its version counter)."""
    key = tuple((w.data_ptr(), w._version, w.dtype, w.device) for w in sources)
    cached = getattr(model, name, None)
    if cached is None or cached[0] != key:
        with torch.no_grad():
            cached = (key, build())
        object.__setattr__(model, name, cached)  # plain attribute, not a submodule/buffer
    return cached[1]


def fused_gate_up_weights(model) -> list[torch.Tensor]:
    """``[gate_proj.weight; up_proj.weight]`` ``(2I, D)`` of every layer, cached on the model."""
    sources = [w for layer in model.layers for w in (layer.mlp.gate_proj.weight, layer.mlp.up_proj.weight)]
    return _cached(model, "_fused_gate_up_cache", sources,
                   lambda: [torch.cat([layer.mlp.gate_proj.weight, layer.mlp.up_proj.weight]) for layer in model.layers])


def step_weights(model, dtype: torch.dtype | None = None) -> list[tuple[torch.Tensor, ...]]:
    """Per layer the transposed ``(qkv, o, [gate; up], down)`` weights of the decode step, plus ``(lm_head,)``
    last, in ``dtype`` (None: the model's own tensors; another dtype: copies cached on the model)."""
    gate_up = fused_gate_up_weights(model)

    def build():
        out = [tuple(w.t() if dtype is None else w.to(dtype).t() for w in
                     (layer.self_attn.qkv_proj.weight, layer.self_attn.o_proj.weight, gu, layer.mlp.down_proj.weight))
               for layer, gu in zip(model.layers, gate_up)]
        head = model.lm_head.weight
        return out + [(head.t() if dtype is None else head.to(dtype).t(),)]

    if dtype is None:
        return build()
    sources = [*gate_up, model.lm_head.weight] + [w for layer in model.layers
                                                  for w in (layer.self_attn.qkv_proj.weight, layer.self_attn.o_proj.weight,
                                                            layer.mlp.down_proj.weight)]
    return _cached(model, f"_step_weights_cache_{str(dtype).replace('torch.', '')}", sources, build)


class FusedDecodeStep:
    """``step(tokens (R,) long, position: int, kv_length: int) -> logits (R, V) float32`` for a model in
    eval mode; the returned logits live in a buffer that the next call overwrites. ``matmul_dtype``: None (the
    model dtype) or ``torch.bfloat16`` (the matrix products on bf16 weights, see the module docstring)."""

    def __init__(self, model, rows: int, cache: StaticKVCache, matmul_dtype: torch.dtype | None = None):
        cfg = model.config
        weight = model.embed_tokens.weight
        device, dtype = weight.device, weight.dtype
        if matmul_dtype is not None and matmul_dtype not in MATMUL_DTYPES:
            raise ValueError(f"`matmul_dtype` must be None or one of {MATMUL_DTYPES}, got {matmul_dtype}")
        mm_dtype = dtype if matmul_dtype in (None, dtype) else matmul_dtype
        self.model = model
        self.cache = cache
        self.dtype, self.mm_dtype = dtype, mm_dtype
        self.heads, self.kv_heads, self.head_dim = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        self.dim, self.inter = cfg.hidden_size, cfg.intermediate_size
        self.gqa = self.kv_heads != self.heads
        weights = step_weights(model, None if mm_dtype == dtype else mm_dtype)
        self.layers = []
        for layer, (w_qkv, w_o, w_gu, w_down) in zip(model.layers, weights[:-1]):
            self.layers.append(
                (
                    layer.input_layernorm.weight,
                    layer.input_layernorm.eps,
                    w_qkv,
                    w_o,
                    layer.post_attention_layernorm.weight,
                    layer.post_attention_layernorm.eps,
                    w_gu,
                    w_down,
                )
            )
        self.norm_weight, self.norm_eps = model.norm.weight, model.norm.eps
        self.head_t = weights[-1][0]
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
        # matrix products in mm_dtype: their inputs and outputs (the rest stays in the model dtype)
        self.mixed = mm_dtype != dtype

        def mm_buf(*shape):
            return buf(*shape, dt=mm_dtype) if self.mixed else None

        self.x_mm, self.attn_mm, self.act_mm = mm_buf(rows, self.dim), mm_buf(rows, self.dim), mm_buf(rows, self.inter)
        self.qkv_mm, self.gate_up_mm = mm_buf(rows, self.dim + 2 * kv), mm_buf(rows, 2 * self.inter)
        self.tmp_mm, self.logits_mm = mm_buf(rows, self.dim), mm_buf(rows, cfg.output_vocab_size)

    def _mm(self, x: torch.Tensor, w: torch.Tensor, out: torch.Tensor, x_mm: torch.Tensor | None = None,
            out_mm: torch.Tensor | None = None) -> torch.Tensor:
        """``out = x @ w``; mixed: ``x`` rounded to ``mm_dtype`` (into ``x_mm``), the product accumulated there
        (``out_mm``) and written back to ``out`` in the model dtype."""
        if not self.mixed:
            return torch.mm(x, w, out=out)
        torch.mm(x_mm.copy_(x), w, out=out_mm)
        return out.copy_(out_mm)

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
            qkv = self._mm(x, w_qkv, self.qkv, self.x_mm, self.qkv_mm)
            q = qkv[:, :d].view(rows, self.heads, 1, hd)
            k_cache, v_cache = self.cache.keys[i], self.cache.values[i]
            k_cache[:, :, position].copy_(qkv[:, d : d + kv].view(rows, self.kv_heads, hd))
            v_cache[:, :, position].copy_(qkv[:, d + kv :].view(rows, self.kv_heads, hd))
            out = F.scaled_dot_product_attention(
                q.to(k_cache.dtype), k_cache[:, :, :kv_length], v_cache[:, :, :kv_length], enable_gqa=self.gqa
            )
            self._mm(out.reshape(rows, d), w_o, self.tmp, self.attn_mm, self.tmp_mm)
            self.h.add_(self.tmp)
            x = self._rms_norm(w_post, eps_post)
            self._mm(x, w_gu, self.gate_up, self.x_mm, self.gate_up_mm)
            gate = F.silu(self.gate_up[:, : self.inter], inplace=True)  # in the buffer: no temporary
            torch.mul(gate, self.gate_up[:, self.inter :], out=self.act)
            self._mm(self.act, w_down, self.tmp, self.act_mm, self.tmp_mm)
            self.h.add_(self.tmp)
        x = self._rms_norm(self.norm_weight, self.norm_eps)
        logits = self._mm(x, self.head_t, self.logits, self.x_mm, self.logits_mm)
        return logits if logits.dtype == torch.float32 else logits.float()
