"""Token selection and the KV-cached decoding loop of :class:`VideoARGenerator`.

Everything here works on device tensors without host synchronisation: filters use ``topk`` /
``sort`` / ``scatter``, sampling is an exponential race (``argmax(p / E)`` with ``E ~ Exp(1)``
drawn in place from a ``torch.Generator``, which selects token ``i`` with probability ``p_i``),
cache writes use ``index_copy_`` at a position tensor, and the loop only branches on Python ints.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable

import torch
import torch.nn.functional as F

from hf_vidtok.modules.kv_cache import StaticKVCache
from .fused_step_video_ar import FusedDecodeStep

__all__ = [
    "top_k_top_p_filtering",
    "logits_to_probs",
    "sample_from_logits",
    "apply_cfg",
    "cfg_active",
    "decode_with_cache",
    "decode_without_cache",
]

LogitsMaskFn = Callable[[int, torch.Tensor], torch.Tensor]
StopFn = Callable[[], torch.Tensor]


def top_k_top_p_filtering(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Return ``logits (B, V)`` with filtered entries set to ``-inf`` (out of place).

    * ``top_k > 0``: keep the entries ``>=`` the k-th largest value (ties at the threshold kept);
    * ``top_p < 1``: Hugging Face nucleus rule on the (top-k filtered) softmax: sort descending,
      drop tokens whose cumulative probability exceeds ``top_p``, shifted by one so that the first
      token crossing the threshold (and always the most likely token) is kept.
    """
    if top_k > 0:
        k = min(int(top_k), logits.shape[-1])
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, sorted_idx = torch.sort(logits, dim=-1, descending=True)
        cum = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
        remove = cum > top_p
        remove = torch.cat([torch.zeros_like(remove[..., :1]), remove[..., :-1]], dim=-1)
        remove = remove.scatter(-1, sorted_idx, remove)
        logits = logits.masked_fill(remove, float("-inf"))
    return logits


def logits_to_probs(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
) -> torch.Tensor:
    """Float32 sampling distribution ``(B, V)``: ``softmax(filter(logits / max(temperature, 1e-5)))``."""
    logits = logits.float()
    if temperature != 1.0:  # x / 1.0 == x: skip the op (and its allocation) at the default
        logits = logits / max(float(temperature), 1e-5)
    if top_k > 0 or top_p < 1.0:
        logits = top_k_top_p_filtering(logits, top_k, top_p)
    return F.softmax(logits, dim=-1)


def sample_from_logits(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Draw one token per row of ``logits (B, V)``; returns a LongTensor ``(B,)``.

    ``top_k == 1`` or ``temperature == 0`` is greedy (argmax, no randomness). Otherwise a sample of
    :func:`logits_to_probs` by exponential race; ``noise`` is an optional preallocated float32
    ``(B, V)`` buffer that is overwritten (avoids one allocation per step).
    """
    if top_k == 1 or temperature == 0:
        return logits.argmax(dim=-1)
    probs = logits_to_probs(logits, temperature, top_k, top_p)
    if noise is None:
        noise = torch.empty_like(probs)
    noise.exponential_(generator=generator)
    noise.clamp_min_(torch.finfo(noise.dtype).tiny)
    return (probs / noise).argmax(dim=-1)


def apply_cfg(logits: torch.Tensor, cfg_scale: float, guided: bool = True) -> torch.Tensor:
    """Combine ``logits (2B, V)`` = [conditional ; unconditional] into ``u + s * (c - u)`` in float32
    (``guided=False``: the conditional half only)."""
    cond, uncond = logits.float().chunk(2, dim=0)
    if not guided:
        return cond
    return uncond + (cond - uncond) * cfg_scale


def cfg_active(step: int, cfg_interval: int) -> bool:
    """Whether guidance applies to generated token ``step`` (0-based).

    Official LlamaGen/LARP indexing: the prefill token and decode-loop iterations ``j <= cfg_interval``
    (token ``j + 1``) are guided; ``cfg_interval = -1`` guides every token.
    """
    return cfg_interval < 0 or step - 1 <= cfg_interval


def _select(
    logits: torch.Tensor,
    step: int,
    sequences: torch.Tensor,
    *,
    use_cfg: bool,
    cfg_scale: float,
    cfg_interval: int,
    temperature: float,
    top_k: int,
    top_p: float,
    generator: torch.Generator | None,
    noise: torch.Tensor | None,
    logits_mask_fn: LogitsMaskFn | None,
) -> torch.Tensor:
    if use_cfg:
        logits = apply_cfg(logits, cfg_scale, cfg_active(step, cfg_interval))
    else:
        logits = logits.float()
    if logits_mask_fn is not None:
        allowed = logits_mask_fn(step, sequences)
        logits = logits.masked_fill(~allowed.to(device=logits.device, dtype=torch.bool), float("-inf"))
    return sample_from_logits(logits, temperature, top_k, top_p, generator, noise)


class _CudaGraphStep:
    """Replays one captured CUDA graph of the decode step per KV-length bucket (GPU only).

    Inputs are copied into static buffers; the graph's output buffer is consumed before the next
    replay. Graphs are captured in increasing bucket order and the previous one is dropped when
    the loop moves to the next bucket, so they can share one memory pool.
    """

    def __init__(self, step_fn, rows: int, device: torch.device):
        self.step_fn = step_fn
        self.tokens = torch.zeros(rows, 1, dtype=torch.long, device=device)
        self.position = torch.zeros(1, dtype=torch.long, device=device)
        self.pool = torch.cuda.graph_pool_handle()
        self.key = None
        self.graph = None
        self.out = None

    def __call__(self, tokens, position, cache, kv_length, use_mask):
        self.tokens.copy_(tokens)
        self.position.copy_(position)
        key = (kv_length, use_mask)
        if key != self.key:
            self.graph = self.out = None
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up / compile (idempotent: rewrites the same cache entries)
                self.step_fn(self.tokens, self.position, cache, kv_length, use_mask)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool):
                self.out = self.step_fn(self.tokens, self.position, cache, kv_length, use_mask)
            self.graph, self.key = graph, key
        self.graph.replay()
        return self.out


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


def decode_with_cache(
    model,
    cond_embeds: torch.Tensor,
    num_tokens: int,
    *,
    use_cfg: bool,
    cfg_scale: float,
    cfg_interval: int,
    temperature: float,
    top_k: int,
    top_p: float,
    generator: torch.Generator | None,
    logits_mask_fn: LogitsMaskFn | None = None,
    kv_block_size: int | None = None,
    compile: bool | dict = False,
    cuda_graph: bool = False,
    step_callback: Callable[[int], None] | None = None,
    stop_fn: StopFn | None = None,
    stop_every: int = 64,
    matmul_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Prefill the condition prefix ``cond_embeds (R, Tc, D)`` into a preallocated cache, then
    decode ``num_tokens - 1`` single-token steps; returns ``(B, n)`` LongTensor with ``B = R / 2``
    under CFG, else ``R``, and ``n = num_tokens`` (or fewer when ``stop_fn`` ended the loop).

    ``kv_block_size``: attention reads the cache up to the next multiple of this size (masked
    beyond the current position), so the step has few distinct shapes (for ``torch.compile`` /
    CUDA graphs). Default: 1 (exact length, no mask) in eager mode, 128 when compiling/graphing.
    Eager exact-length decoding runs :class:`~.fused_step_video_ar.FusedDecodeStep` (bit-identical
    to the module path, fewer ops and no per-step allocations in the model).

    ``matmul_dtype``: the fused eager step's matrix products on weights of that dtype (``torch.bfloat16``; see
    :class:`~.fused_step_video_ar.FusedDecodeStep`); only with the fused step (eager, exact-length, eval).

    ``stop_fn``: optional ``fn() -> bool tensor`` (e.g. "every row finished"), read on the host every
    ``stop_every`` tokens (the only synchronisation of the loop); the loop ends after the first token
    at which it is true.
    """
    rows, num_cond, _ = cond_embeds.shape
    batch = rows // 2 if use_cfg else rows
    device = cond_embeds.device
    config = model.config
    graphed = bool(compile) or cuda_graph
    block = int(kv_block_size) if kv_block_size is not None else (128 if graphed else 1)
    if block <= 0:
        raise ValueError(f"`kv_block_size` must be positive, got {kv_block_size}")
    total = num_cond + num_tokens - 1
    block = min(block, _round_up(total, 8))
    cache_len = _round_up(total, max(block, 8))
    cache = StaticKVCache(
        config.num_hidden_layers,
        rows,
        config.num_key_value_heads,
        cache_len,
        config.head_dim,
        dtype=cond_embeds.dtype,
        device=device,
    )
    sequences = torch.empty(batch, num_tokens, dtype=torch.long, device=device)
    noise = None
    if not (top_k == 1 or temperature == 0):
        noise = torch.empty(batch, config.output_vocab_size, dtype=torch.float32, device=device)
    select = dict(
        use_cfg=use_cfg,
        cfg_scale=cfg_scale,
        cfg_interval=cfg_interval,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        generator=generator,
        noise=noise,
        logits_mask_fn=logits_mask_fn,
    )

    logits = model._prefill(cond_embeds, cache)
    token = _select(logits, 0, sequences, **select)
    sequences[:, 0] = token
    if step_callback is not None:
        step_callback(0)
    if num_tokens == 1:
        return sequences

    step_fn = model._decode_step
    fused = None
    if not graphed and block == 1 and not model.training:
        fused = FusedDecodeStep(model, rows, cache, matmul_dtype=matmul_dtype)
    elif matmul_dtype is not None:
        raise ValueError(
            "`matmul_dtype` applies to the eager fused decode step: not with `compile`, `cuda_graph` or a "
            f"`kv_block_size` > 1 (got compile={bool(compile)}, cuda_graph={cuda_graph}, kv_block_size={block})"
        )
    ctx = contextlib.nullcontext()
    if compile:
        opts = dict(compile) if isinstance(compile, dict) else {}
        opts.setdefault("fullgraph", True)
        opts.setdefault("dynamic", False)
        step_fn = torch.compile(step_fn, **opts)
        dynamo_config = importlib.import_module("torch._dynamo").config
        limit = _round_up(cache_len, block) // block * 2 + 8
        ctx = dynamo_config.patch(recompile_limit=max(dynamo_config.recompile_limit, limit))
    if cuda_graph:
        if device.type != "cuda":
            raise ValueError("`cuda_graph=True` needs the model on a CUDA device")
        step_fn = _CudaGraphStep(step_fn, rows, device)

    positions = torch.arange(num_cond, num_cond + num_tokens - 1, device=device)
    fed = torch.empty(rows, dtype=torch.long, device=device)
    with ctx:
        for i in range(1, num_tokens):
            p = num_cond + i - 1  # absolute position of the fed token (host int, no sync)
            kv_length = p + 1 if block == 1 else min(_round_up(p + 1, block), cache_len)
            use_mask = graphed or kv_length != p + 1
            fed[:batch].copy_(token)
            if use_cfg:
                fed[batch:].copy_(token)
            if fused is not None:
                logits = fused(fed, p, kv_length)
            else:
                logits = step_fn(fed.view(rows, 1), positions[i - 1 : i], cache, kv_length, use_mask)
            token = _select(logits, i, sequences, **select)
            sequences[:, i] = token
            if step_callback is not None:
                step_callback(i)
            if stop_fn is not None and i % stop_every == 0 and bool(stop_fn()):
                sequences = sequences[:, : i + 1]
                break
    del cache
    return sequences


def decode_without_cache(
    model,
    cond_embeds: torch.Tensor,
    num_tokens: int,
    *,
    use_cfg: bool,
    cfg_scale: float,
    cfg_interval: int,
    temperature: float,
    top_k: int,
    top_p: float,
    generator: torch.Generator | None,
    logits_mask_fn: LogitsMaskFn | None = None,
    step_callback: Callable[[int], None] | None = None,
    stop_fn: StopFn | None = None,
    stop_every: int = 64,
) -> torch.Tensor:
    """Reference loop: a full causal forward over ``[condition ; tokens so far]`` for every token
    (quadratic; for checks and benchmarks). ``stop_fn`` / ``stop_every`` as in :func:`decode_with_cache`."""
    rows = cond_embeds.shape[0]
    batch = rows // 2 if use_cfg else rows
    sequences = torch.empty(batch, num_tokens, dtype=torch.long, device=cond_embeds.device)
    noise = None
    if not (top_k == 1 or temperature == 0):
        noise = torch.empty(batch, model.config.output_vocab_size, dtype=torch.float32, device=cond_embeds.device)
    for i in range(num_tokens):
        tokens = sequences[:, :i]
        if use_cfg:
            tokens = torch.cat([tokens, tokens], dim=0)
        logits = model._full_forward_logits(cond_embeds, tokens, last_only=True)[:, -1]
        token = _select(
            logits,
            i,
            sequences,
            use_cfg=use_cfg,
            cfg_scale=cfg_scale,
            cfg_interval=cfg_interval,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            generator=generator,
            noise=noise,
            logits_mask_fn=logits_mask_fn,
        )
        sequences[:, i] = token
        if step_callback is not None:
            step_callback(i)
        if stop_fn is not None and i > 0 and i % stop_every == 0 and bool(stop_fn()):
            return sequences[:, : i + 1]
    return sequences
