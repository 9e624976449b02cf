"""AR generation speed benchmark (``VideoARGenerator.generate``); prints one JSON object per measurement.

Modes (``--modes``, comma list):

* ``kv_cache``: our static-cache loop (exact-length attention in eager mode; on ``--device cuda``
  bf16 + ``torch.compile`` + CUDA graphs unless disabled);
* ``kv_cache_full``: same cache, but every step attends to the whole preallocated cache with a mask
  (how the official LARP / LlamaGen loop computes attention), eager;
* ``no_cache``: the same model without a KV cache (full re-forward of the sequence every token);
* ``official_style``: our restatement of the official loop's per-step work on the same weights (full-
  length cache + (B, L, L) mask, cache copied by ``repeat_interleave`` each step, math SDPA,
  ``torch.multinomial``) — an in-process stand-in for the official implementation.

CPU default: a ~50M model (width 512, 12 layers, 8 heads, codebook 8192) at batch 2, 64 tokens, CFG 1.25
(about a minute on 2 free cores; ``--threads 1`` is steadier on a loaded machine).
GPU default: the release size llama-abs-LP (632M) at batch 32, 1024 tokens, CFG 1.25.

    python bench/bench_generate.py                       # CPU figures
    python bench/bench_generate.py --device cuda         # H100 target: >= 13,000 tokens/s
    python bench/bench_generate.py --preset llama-abs-S --batch 4 --tokens 256 --modes kv_cache,no_cache
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from hf_vidtok.models.video_ar import LLAMA_ABS_PRESETS, VideoARGenerator, VideoARGeneratorConfig


def build_model(args, device, dtype) -> VideoARGenerator:
    if args.preset:
        layers, heads, dim = LLAMA_ABS_PRESETS[args.preset]
    else:
        layers, heads, dim = args.layers, args.heads, args.hidden_size
    config = VideoARGeneratorConfig(
        hidden_size=dim,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        codebook_size=args.codebook_size,
        max_seq_len=args.tokens,
        frame_prediction=args.frame_prediction,
        num_classes=args.num_classes,
    )
    torch.manual_seed(0)
    model = VideoARGenerator(config)
    with torch.no_grad():  # the official init zeroes the head: give it weights so sampling is non-trivial
        model.lm_head.weight.normal_(std=0.02)
    return model.to(device=device, dtype=dtype).eval()


@torch.no_grad()
def official_style_generate(model, class_labels, cfg_scale, generator, num_tokens):
    """Our restatement of the per-step work of the official LARP / LlamaGen sampling loop, run on
    the same weights (class-conditional only), for an in-process estimate of the official speed:
    KV cache of the full rounded length with a ``(B, L, L)`` boolean causal mask indexed every step,
    the cache copied by ``repeat_interleave`` each layer and step, math SDPA over the whole cache,
    CFG in the model dtype, softmax + ``torch.multinomial``."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    cfg = model.config
    device = class_labels.device
    use_cfg = cfg_scale > 1.0
    cond = torch.cat([class_labels, torch.full_like(class_labels, cfg.null_class_id)]) if use_cfg else class_labels
    rows, t_cond, heads, hd = cond.shape[0], cfg.num_cond_tokens, cfg.num_attention_heads, cfg.head_dim
    length = -(-(t_cond + num_tokens) // 8) * 8
    dtype = model.embed_tokens.weight.dtype
    kc = [torch.zeros(rows, heads, length, hd, dtype=dtype, device=device) for _ in model.layers]
    vc = [torch.zeros(rows, heads, length, hd, dtype=dtype, device=device) for _ in model.layers]
    causal = torch.tril(torch.ones(length, length, dtype=torch.bool, device=device)).unsqueeze(0).repeat(rows, 1, 1)

    def forward(h, input_pos):
        mask = causal[:rows, None, input_pos]
        h = h + model.position_embedding[:, input_pos]
        for i, layer in enumerate(model.layers):
            x = layer.input_layernorm(h)
            q, k, v = layer.self_attn.qkv_proj(x).split(cfg.hidden_size, dim=-1)
            q, k, v = (t.view(rows, -1, heads, hd).transpose(1, 2) for t in (q, k, v))
            kc[i][:, :, input_pos] = k
            vc[i][:, :, input_pos] = v
            keys, values = kc[i].repeat_interleave(1, dim=1), vc[i].repeat_interleave(1, dim=1)
            with sdpa_kernel(SDPBackend.MATH):
                o = torch.nn.functional.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
            h = h + layer.self_attn.o_proj(o.transpose(1, 2).contiguous().view(rows, -1, cfg.hidden_size))
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        return model.lm_head(model.norm(h))

    def sample(logits):
        logits = logits[:, -1]
        if use_cfg:
            c, u = logits.chunk(2)
            logits = u + (c - u) * cfg_scale
        probs = torch.softmax(logits.float() / 1.0, dim=-1)
        return torch.multinomial(probs, 1, generator=generator)

    seq = torch.empty(class_labels.shape[0], num_tokens, dtype=torch.int, device=device)
    tok = sample(forward(model.class_embedding(cond).unsqueeze(1), torch.arange(t_cond, device=device)))
    seq[:, 0:1] = tok
    input_pos = torch.tensor([t_cond], device=device)
    for i in range(1, num_tokens):
        x = tok.view(-1, 1)
        x = torch.cat([x, x]) if use_cfg else x
        tok = sample(forward(model.embed_tokens(x), input_pos))
        input_pos += 1
        seq[:, i : i + 1] = tok
    return seq


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def run(args):
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    dtype = getattr(torch, args.dtype or ("bfloat16" if cuda else "float32"))
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    model = build_model(args, device, dtype)
    params = sum(p.numel() for p in model.parameters())
    config = model.config
    if config.frame_prediction:
        cond = dict(cond_ids=torch.randint(0, config.codebook_size, (args.batch, config.num_cond_tokens - 1), device=device))
        cfg_scale = 1.0
    else:
        cond = dict(class_labels=torch.arange(args.batch, device=device) % config.num_classes)
        cfg_scale = args.cfg_scale
    compile_default = cuda and not args.no_compile
    graph_default = cuda and not args.no_cuda_graph
    runs = []
    for mode in args.modes.split(","):
        kwargs = dict(cfg_scale=cfg_scale, temperature=1.0, top_k=args.top_k, top_p=args.top_p)
        generate = model.generate
        if mode == "official_style":
            if config.frame_prediction or args.top_k or args.top_p < 1:
                raise ValueError("official_style mode: class-conditional, top_k=0, top_p=1 only")

            def generate(class_labels, generator, max_new_tokens=None, **_):
                return official_style_generate(
                    model, class_labels, cfg_scale, generator, max_new_tokens or config.max_seq_len
                )
        elif mode == "kv_cache":
            kwargs.update(compile=compile_default, cuda_graph=graph_default, kv_block_size=args.kv_block_size)
        elif mode == "kv_cache_full":
            kwargs.update(kv_block_size=1 << 30)
        elif mode == "no_cache":
            kwargs.update(use_cache=False)
        else:
            raise ValueError(f"unknown mode {mode!r}")
        runs.append(dict(mode=mode, generate=generate, kwargs=kwargs, times=[], gen=torch.Generator(device=device).manual_seed(0)))

    for run_ in runs:  # warm-up (compilation / graph capture; full length on GPU), peak memory
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for _ in range(args.warmup):
            warm_tokens = None if cuda else min(8, config.max_seq_len)
            run_["generate"](**cond, generator=run_["gen"], max_new_tokens=warm_tokens, **run_["kwargs"])
        _sync(device)
        run_["warmup_seconds"] = time.perf_counter() - t0
        if cuda:
            run_["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    for _ in range(args.repeats):  # modes interleaved so that load drift affects all alike
        for run_ in runs:
            _sync(device)
            t0 = time.perf_counter()
            out = run_["generate"](**cond, generator=run_["gen"], **run_["kwargs"])
            _sync(device)
            run_["times"].append(time.perf_counter() - t0)
            run_["output_shape"] = list(out.shape)
    for run_ in runs:
        sec = min(run_["times"])
        kwargs = run_["kwargs"]
        rec = dict(
            bench="ar_generate",
            mode=run_["mode"],
            device=str(device),
            dtype=str(dtype).replace("torch.", ""),
            params=params,
            hidden_size=config.hidden_size,
            layers=config.num_hidden_layers,
            heads=config.num_attention_heads,
            codebook_size=config.codebook_size,
            frame_prediction=config.frame_prediction,
            batch=args.batch,
            tokens=config.max_seq_len,
            cfg_scale=cfg_scale,
            compiled=bool(kwargs.get("compile", False)),
            cuda_graph=bool(kwargs.get("cuda_graph", False)),
            seconds=round(sec, 4),
            seconds_all=[round(t, 4) for t in run_["times"]],
            tokens_per_s=round(args.batch * config.max_seq_len / sec, 1),
            clips_per_s=round(args.batch / sec, 4),
            warmup_seconds=round(run_["warmup_seconds"], 2),
            torch_threads=torch.get_num_threads(),
            output_shape=run_["output_shape"],
        )
        if cuda:
            rec["peak_memory_gib"] = run_["peak_memory_gib"]
        print(json.dumps(rec), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default=None, help="default: bfloat16 on cuda, float32 on cpu")
    p.add_argument("--preset", default=None, help="official size: " + ", ".join(LLAMA_ABS_PRESETS))
    p.add_argument("--hidden_size", type=int, default=512)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--codebook_size", type=int, default=8192)
    p.add_argument("--num_classes", type=int, default=101)
    p.add_argument("--frame_prediction", action="store_true")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--tokens", type=int, default=None, help="generated tokens per clip (max_seq_len)")
    p.add_argument("--cfg_scale", type=float, default=1.25)
    p.add_argument("--top_k", type=int, default=0)
    p.add_argument("--top_p", type=float, default=1.0)
    p.add_argument("--modes", default=None, help="comma list of kv_cache, kv_cache_full, no_cache")
    p.add_argument("--kv_block_size", type=int, default=None)
    p.add_argument("--no_compile", action="store_true")
    p.add_argument("--no_cuda_graph", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    if cuda and args.preset is None and args.hidden_size == 512 and args.layers == 12:
        args.preset = "llama-abs-LP"
    args.batch = args.batch or (32 if cuda else 2)
    args.tokens = args.tokens or (1024 if cuda else 64)
    args.modes = args.modes or "kv_cache,official_style,no_cache"
    args.repeats = args.repeats or (3 if cuda else 2)
    run(args)


if __name__ == "__main__":
    main()
