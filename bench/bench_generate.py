"""AR generation speed benchmark (``VideoARGenerator.generate``); prints one JSON object per measurement.

Modes (``--modes``, comma list):

* ``kv_cache``: our static-cache loop (eager: the fused decode step, exact-length attention; on
  ``--device cuda`` bf16 + ``torch.compile`` + CUDA graphs unless disabled);
* ``kv_cache_eager``: ``kv_cache`` without ``torch.compile`` and CUDA graphs (what they gain on a GPU);
* ``kv_cache_unfused``: the same loop with the module-by-module decode step (the sampler before the
  fused step; bit-identical tokens);
* ``kv_cache_full``: same cache, but every step attends to the whole preallocated cache with a mask
  (how the official LARP / LlamaGen loop computes attention), eager;
* ``no_cache``: the same model without a KV cache (full re-forward of the sequence every token);
* ``official_style``: our restatement of the official loop's per-step work on the same weights (full-
  length cache + (B, L, L) mask, cache copied by ``repeat_interleave`` each step, math SDPA,
  ``torch.multinomial``) — an in-process stand-in for the official implementation;
* ``kv_cache_bf16``: ``kv_cache`` with ``generate(matmul_dtype=torch.bfloat16)``: the decode step's matrix
  products on bf16 copies of the weights, everything else (norms, attention, KV cache, logits) in fp32 (CPU: only
  where the CPU multiplies bf16 natively, AVX512-BF16 or AMX; detected from /proc/cpuinfo). It comes with an
  ``ar_generate_bf16_quality`` record: the per-token NLL of the fp32 path's samples under the bf16 path and under
  the fp32 path (teacher-forced through the same decode step), and of the bf16 samples under the fp32 path, so the
  speed is only taken with samples that are as good.

CPU default (issue 16): a 28.5M model (width 512, 8 layers, 8 heads, codebook 1024) at batch 4, CFG 1.25,
fp32, 2 threads, at 64, 256 and 1024 tokens, modes ``kv_cache,kv_cache_unfused,official_style`` (plus
``kv_cache_bf16`` on a CPU with native bf16) run interleaved (so that load from other processes hits all alike); each token count also prints an
``ar_generate_summary`` object with ``speedup_vs_official_style`` (median of the per-repeat time ratios)
and ``--profile`` adds an ``ar_generate_profile`` object (torch.profiler, top ops per decode step, and the
matmul floor: the step's matrix products alone, on the model's own weights, with nothing around them).
GPU default: the release size llama-abs-LP (632M) at batch 32, 1024 tokens, CFG 1.25.

    python bench/bench_generate.py --profile             # CPU figures (about 4 minutes on 2 free cores)
    python bench/bench_generate.py --device cuda         # H100 target: >= 13,000 tokens/s
    python bench/bench_generate.py --preset llama-abs-S --batch 4 --tokens 256 --modes kv_cache,no_cache
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import time

import torch

try:
    from device_info import cpu_native_bf16, device_name
except ImportError:  # imported as bench.bench_generate from the repository root
    from bench.device_info import cpu_native_bf16, device_name
from hf_vidtok.models.video_ar import LLAMA_ABS_PRESETS, VideoARGenerator, VideoARGeneratorConfig
from hf_vidtok.models.video_ar import sampling_video_ar


@contextlib.contextmanager
def unfused_decode_step():
    """Run the decode loop with the module-by-module step (the path before ``FusedDecodeStep``)."""
    fused = sampling_video_ar.FusedDecodeStep
    sampling_video_ar.FusedDecodeStep = lambda *args, **kwargs: None
    try:
        yield
    finally:
        sampling_video_ar.FusedDecodeStep = fused


def build_model(args, device, dtype, num_tokens) -> VideoARGenerator:
    if args.model:  # a trained generator: its own sizes, and the tokens it was trained to generate
        model = VideoARGenerator.from_pretrained(args.model)
        if num_tokens != model.config.max_seq_len:
            raise ValueError(f"--tokens must be the model's max_seq_len ({model.config.max_seq_len}) with --model, got {num_tokens}")
        return model.to(device=device, dtype=dtype).eval()
    if args.preset:
        layers, heads, dim = LLAMA_ABS_PRESETS[args.preset]
    else:
        layers, heads, dim = args.layers, args.heads, args.hidden_size
    config = VideoARGeneratorConfig(
        hidden_size=dim,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        codebook_size=args.codebook_size,
        max_seq_len=num_tokens,
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


def profile_step(model, cond, kwargs, num_tokens, device, top=12) -> dict:
    """torch.profiler over one ``generate`` call: the ops with the most self time, per decode step."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    gen = torch.Generator(device=device).manual_seed(0)
    with profile(activities=activities) as prof:
        t0 = time.perf_counter()
        model.generate(**cond, generator=gen, **kwargs)
        _sync(device)
        seconds = time.perf_counter() - t0
    events = prof.key_averages()
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    total = sum(getattr(e, attr) for e in events) or 1.0
    rows = sorted(events, key=lambda e: getattr(e, attr), reverse=True)[:top]
    ops = [
        dict(
            op=e.key,
            percent=round(100.0 * getattr(e, attr) / total, 1),
            us_per_step=round(getattr(e, attr) / num_tokens, 1),
            calls_per_step=round(e.count / num_tokens, 2),
        )
        for e in rows
    ]
    return dict(profiled_seconds=round(seconds, 3), ms_per_step=round(1e3 * seconds / num_tokens, 3), top_ops=ops)


@torch.no_grad()
def matmul_floor(model, rows: int, device, repeats: int = 10) -> dict:
    """Time of the decode step's matrix products alone: ``rows x in`` times every ``nn.Linear`` weight of the
    model (``rows`` = batch x 2 with CFG), back to back, with nothing else in between. The fastest a decode step
    could run on this machine with this library's GEMM, whatever the loop around it does; the gap between
    ``ms_per_step`` and this floor is the loop's own overhead (attention, sampling, cache, Python)."""
    weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if not weights:
        return {}
    inputs = {w.shape[1]: torch.randn(rows, w.shape[1], device=device, dtype=w.dtype) for w in weights}
    for w in weights:  # warm-up
        torch.nn.functional.linear(inputs[w.shape[1]], w)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        for w in weights:
            torch.nn.functional.linear(inputs[w.shape[1]], w)
    _sync(device)
    seconds = (time.perf_counter() - t0) / repeats
    nbytes = sum(w.numel() * w.element_size() for w in weights)
    # What the same weights cost when only read: a reduction over each (the machine's read bandwidth for them) and
    # one-row products (GEMV, the BLAS's own streaming kernel). A GEMM of `rows` rows far below both runs inside
    # the BLAS kernel, not in the decode loop.
    reads = {}
    for name, fn in (("read_sum", lambda w: w.sum()), ("gemv_1row", lambda w: torch.mv(w, inputs[w.shape[1]][0]))):
        for w in weights:
            fn(w)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            for w in weights:
                fn(w)
        _sync(device)
        reads[f"{name}_weight_gb_per_s"] = round(nbytes * repeats / (time.perf_counter() - t0) / 1e9, 2)
    return dict(matmul_floor_ms_per_step=round(1e3 * seconds, 3), linear_weight_mb=round(nbytes / 1e6, 1),
                matmul_floor_weight_gb_per_s=round(nbytes / seconds / 1e9, 2), matmul_rows=rows, **reads)


@torch.no_grad()
def stepwise_nll(model, class_labels, sequences, matmul_dtype=None) -> tuple[float, float]:
    """Mean NLL per token (nats) of ``sequences (B, n)`` under the decode path ``generate`` samples with (prefill,
    then the fused step fed the sequence token by token, unguided as trained, ``matmul_dtype`` as in ``generate``),
    and the mean entropy of its next-token distributions (how peaked they are: an untrained head is near-uniform)."""
    from hf_vidtok.models.video_ar.fused_step_video_ar import FusedDecodeStep
    from hf_vidtok.modules.kv_cache import StaticKVCache

    cfg = model.config
    rows, n = sequences.shape
    cond = model._condition_embeddings(class_labels).to(model.embed_tokens.weight.dtype)
    t_cond = cond.shape[1]
    cache = StaticKVCache(cfg.num_hidden_layers, rows, cfg.num_key_value_heads, t_cond + n, cfg.head_dim,
                          dtype=cond.dtype, device=cond.device)
    step = FusedDecodeStep(model, rows, cache, matmul_dtype=matmul_dtype)
    nll = entropy = 0.0
    logits = model._prefill(cond, cache)
    for i in range(n):
        logp = torch.log_softmax(logits.float(), dim=-1)
        nll += float(-logp.gather(-1, sequences[:, i : i + 1]).sum())
        entropy += float(-(logp.exp() * logp).sum())
        if i + 1 < n:
            p = t_cond + i
            logits = step(sequences[:, i].contiguous(), p, p + 1)
    return nll / (rows * n), entropy / (rows * n)


def bf16_quality(model, cond, kwargs, device) -> dict:
    """NLL of the fp32 path's samples under the bf16-matmul and fp32 paths, and of the bf16 samples under the fp32
    path (the same seed for both samplings)."""
    fp32_kwargs = {k: v for k, v in kwargs.items() if k != "matmul_dtype"}
    gen = torch.Generator(device=device).manual_seed(1)
    fp32_samples = model.generate(**cond, generator=gen, **fp32_kwargs)
    gen = torch.Generator(device=device).manual_seed(1)
    bf16_samples = model.generate(**cond, generator=gen, **kwargs)
    labels = cond["class_labels"]
    nll_32, entropy = stepwise_nll(model, labels, fp32_samples)
    nll_16, _ = stepwise_nll(model, labels, fp32_samples, matmul_dtype=torch.bfloat16)
    nll_bf16_samples, _ = stepwise_nll(model, labels, bf16_samples)
    return dict(
        nll_fp32_samples_under_fp32=round(nll_32, 5), nll_fp32_samples_under_bf16=round(nll_16, 5),
        nll_bf16_samples_under_fp32=round(nll_bf16_samples, 5),
        nll_relative_difference=round(abs(nll_16 - nll_32) / nll_32, 6), mean_entropy_fp32=round(entropy, 4),
        max_entropy=round(math.log(model.config.output_vocab_size), 4),
        tokens_equal_fraction=round(float((fp32_samples == bf16_samples).float().mean()), 4),
    )


def run(args):
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    dtype = getattr(torch, args.dtype or ("bfloat16" if cuda else "float32"))
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    for num_tokens in args.tokens:
        run_length(args, device, dtype, num_tokens)


def run_length(args, device, dtype, num_tokens):
    cuda = device.type == "cuda"
    model = build_model(args, device, dtype, num_tokens)
    params = sum(p.numel() for p in model.parameters())
    config = model.config
    if config.frame_prediction:
        cond = dict(cond_ids=torch.randint(0, config.codebook_size, (args.batch, config.num_cond_tokens - 1), device=device))
        cfg_scale = 1.0
    else:
        cond = dict(class_labels=torch.arange(args.batch, device=device) % config.num_classes)
        cfg_scale = args.cfg_scale
    compile_default = (cuda or args.compile) and not args.no_compile
    if compile_default and args.compile_backend != "inductor":
        compile_default = {"backend": args.compile_backend}
    graph_default = cuda and not args.no_cuda_graph
    runs = []
    modes = args.modes.split(",")
    if "kv_cache_bf16" in modes and (dtype != torch.float32 or config.frame_prediction):
        raise ValueError("kv_cache_bf16 compares against the fp32 class-conditional model: --dtype float32, no --frame_prediction")
    for mode in modes:
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
        elif mode == "kv_cache_eager":
            kwargs.update(kv_block_size=args.kv_block_size)
        elif mode == "kv_cache_bf16":
            kwargs.update(matmul_dtype=torch.bfloat16)  # the fused exact-length step (no --kv_block_size): only it has bf16 products
        elif mode == "kv_cache_unfused":

            def generate(*a, _generate=model.generate, **kw):
                with unfused_decode_step():
                    return _generate(*a, **kw)
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
    summary = dict(bench="ar_generate_summary", device=str(device), device_name=device_name(device), batch=args.batch,
                   tokens=num_tokens)
    by_mode = {r["mode"]: r for r in runs}
    for run_ in runs:
        sec = min(run_["times"])
        kwargs = run_["kwargs"]
        rec = dict(
            bench="ar_generate",
            mode=run_["mode"],
            device=str(device),
            device_name=device_name(device),
            dtype=str(dtype).replace("torch.", ""),
            matmul_dtype="bfloat16" if run_["mode"] == "kv_cache_bf16" else None,
            params=params,
            hidden_size=config.hidden_size,
            layers=config.num_hidden_layers,
            heads=config.num_attention_heads,
            codebook_size=config.codebook_size,
            frame_prediction=config.frame_prediction,
            batch=args.batch,
            tokens=num_tokens,
            cfg_scale=cfg_scale,
            compiled=bool(kwargs.get("compile", False)),
            cuda_graph=bool(kwargs.get("cuda_graph", False)),
            seconds=round(sec, 4),
            seconds_all=[round(t, 4) for t in run_["times"]],
            tokens_per_s=round(args.batch * num_tokens / sec, 1),
            clips_per_s=round(args.batch / sec, 4),
            warmup_seconds=round(run_["warmup_seconds"], 2),
            torch_threads=torch.get_num_threads(),
            output_shape=run_["output_shape"],
        )
        if cuda:
            rec["peak_memory_gib"] = run_["peak_memory_gib"]
        print(json.dumps(rec), flush=True)
        summary[f"{run_['mode']}_tokens_per_s"] = rec["tokens_per_s"]
    if "official_style" in by_mode:
        ref = by_mode["official_style"]["times"]
        for mode, run_ in by_mode.items():
            if mode != "official_style":
                ratios = [o / t for o, t in zip(ref, run_["times"])]  # paired: same repeat, same load
                summary[f"{mode}_speedup_vs_official_style"] = round(statistics.median(ratios), 3)
    if len(runs) > 1:
        print(json.dumps(summary), flush=True)
    if "kv_cache_bf16" in by_mode:
        quality = bf16_quality(model, cond, by_mode["kv_cache_bf16"]["kwargs"], device)
        print(json.dumps(dict(bench="ar_generate_bf16_quality", device=str(device), device_name=device_name(device),
                              batch=args.batch, tokens=num_tokens, **quality)), flush=True)
    if args.profile and "kv_cache" in by_mode:
        prof = profile_step(model, cond, by_mode["kv_cache"]["kwargs"], num_tokens, device)
        rows = args.batch * (2 if cfg_scale > 1.0 else 1)
        floor = matmul_floor(model, rows, device)
        if floor:
            step_ms = 1e3 * min(by_mode["kv_cache"]["times"]) / num_tokens  # the timed run, no profiler overhead
            prof.update(floor, kv_cache_ms_per_step=round(step_ms, 3),
                        step_over_matmul_floor=round(step_ms / floor["matmul_floor_ms_per_step"], 3))
        print(json.dumps(dict(bench="ar_generate_profile", mode="kv_cache", device=str(device), tokens=num_tokens,
                              batch=args.batch, **prof)), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default=None, help="default: bfloat16 on cuda, float32 on cpu")
    p.add_argument("--model", default=None,
                   help="a trained VideoARGenerator (folder or Hub id) instead of a random one of the size flags; "
                        "--tokens defaults to its max_seq_len (e.g. for the bf16 NLL check on a trained model)")
    p.add_argument("--preset", default=None, help="official size: " + ", ".join(LLAMA_ABS_PRESETS))
    p.add_argument("--hidden_size", type=int, default=512)
    p.add_argument("--layers", type=int, default=None, help="default 8 on cpu (the llama-abs-LP preset on cuda)")
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--codebook_size", type=int, default=None, help="default 1024 on cpu, 8192 on cuda")
    p.add_argument("--num_classes", type=int, default=101)
    p.add_argument("--frame_prediction", action="store_true")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--tokens", default=None, help="comma list of generated tokens per clip (max_seq_len)")
    p.add_argument("--cfg_scale", type=float, default=1.25)
    p.add_argument("--top_k", type=int, default=0)
    p.add_argument("--top_p", type=float, default=1.0)
    p.add_argument("--modes", default=None,
                   help="comma list of kv_cache, kv_cache_eager, kv_cache_bf16, kv_cache_unfused, kv_cache_full, no_cache, "
                        "official_style")
    p.add_argument("--profile", action="store_true", help="add a torch.profiler breakdown of the kv_cache mode")
    p.add_argument("--kv_block_size", type=int, default=None)
    p.add_argument("--no_compile", action="store_true")
    p.add_argument("--compile", action="store_true", help="compile the decode step off the GPU too (kv_cache modes)")
    p.add_argument("--compile_backend", default="inductor", help="torch.compile backend of the compiled decode step")
    p.add_argument("--no_cuda_graph", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    else:
        torch.set_num_threads(min(2, torch.get_num_threads()))
    cuda = args.device.startswith("cuda")
    if cuda and args.preset is None and args.hidden_size == 512 and args.layers is None:
        args.preset = "llama-abs-LP"
    args.layers = args.layers or 8
    args.codebook_size = args.codebook_size or (8192 if cuda else 1024)
    args.batch = args.batch or (32 if cuda else 4)
    if args.model and args.tokens is None:
        args.tokens = str(VideoARGeneratorConfig.from_pretrained(args.model).max_seq_len)
    args.tokens = [int(t) for t in str(args.tokens or ("1024" if cuda else "64,256,1024")).split(",")]
    if args.modes is None:
        args.modes = "kv_cache,official_style,no_cache" if cuda else "kv_cache,kv_cache_unfused,official_style"
        if not cuda and cpu_native_bf16():  # bf16 only where the CPU multiplies it natively (no emulation)
            args.modes += ",kv_cache_bf16"
    args.repeats = args.repeats or (3 if cuda else 2)
    run(args)


if __name__ == "__main__":
    main()
