"""Tokenizer speed benchmark; prints one JSON object per measurement.

CPU (default): the small config (16x64x64, width 256, depth 4, 256 tokens) at batch 4: encode+decode of
``LarpTokenizer`` interleaved with ``official_style`` (our restatement of the official LARP code's per-call work
on the same weights, from ``research/larp.md``: every transformer block on every position, VQ softmax before the
argmax, the two ``.item()`` input-norm reads, ``decode_from_bottleneck``) and a ``tokenizer_encode_decode_summary``
with the median of the per-repeat time ratios; then LARP-L at batch 1 and the training steps.
GPU (``--device cuda``): LARP-L (16x128x128, 1024 tokens) in bf16, eager and compiled: encode+decode clips/s at
batch 32, train (forward+backward+Adam, bf16 autocast) clips/s at batch 16, and peak memory.

    python bench/bench_tokenizer.py [--device cuda] [--configs small,larp_l] [--steps 5]
    python bench/bench_tokenizer.py --configs small --measure encode_decode --steps 10   # the CPU ratio only
    python bench/bench_tokenizer.py --configs small --measure encode_decode --steps 20 --modes eager,compiled
        # the CPU ratios of ours eager and ours compiled (inductor) against the official code, one interleaved run
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from hf_vidtok import LarpTokenizer, LarpTokenizerConfig

CONFIGS = {
    "tiny": dict(  # the smoke run of bench/run_all.py
        frame_num=4, input_size=16, patch_size=8, temporal_patch_size=2, encoder_hidden_size=32, decoder_hidden_size=32,
        encoder_num_heads=2, decoder_num_heads=2, encoder_depth=2, decoder_depth=2, bottleneck_token_num=16,
        codebook_size=64, prior_name="custom", prior_num_layers=1, prior_num_heads=2, prior_hidden_size=32,
        prior_max_seq_len=16,
    ),
    "small": dict(
        frame_num=16, input_size=64, patch_size=8, temporal_patch_size=4, encoder_hidden_size=256,
        decoder_hidden_size=256, encoder_num_heads=4, decoder_num_heads=4, encoder_depth=4, decoder_depth=4,
        bottleneck_token_num=256, prior_name="gptc-XXS",
    ),
    "larp_l": dict(),  # the release: 16x128x128, 1024 tokens, width 768, depth 12, gptc-S prior
}
MEASUREMENTS = ("encode_decode", "train")


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timeit(fn, device, warmup, steps):
    for _ in range(warmup):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / steps


def _official_block(block, h):
    """timm ``Block`` as the official code runs it (fused ``qkv`` split by reshape/permute, SDPA, exact GELU)."""
    b, n, d = h.shape
    attn = block.attn
    qkv = attn.qkv(block.norm1(h)).reshape(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    h = h + attn.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))
    return h + block.mlp.fc2(F.gelu(block.mlp.fc1(block.norm2(h))))


@torch.no_grad()
def official_style_roundtrip(model: LarpTokenizer, pixel_values: torch.Tensor):
    """The official ``encode`` + ``decode_from_bottleneck`` per-call work (``research/larp.md`` 1.3-1.7) on
    ``model``'s weights: ``TransformerEncoderParallel`` runs every block on all ``context + queries`` positions and
    keeps the query rows; the eval VQ takes the argmax of ``softmax(s / 0.03)``, computes its two losses and reads
    the first / last input norms with ``.item()``. Returns ``(video (B, C, T, H, W), indices (B, N))``; the
    indices equal ``model.encode``'s (deterministic eval VQ)."""
    c = model.config
    if c.learned_encoder_patch_pe or not c.learned_encoder_latent_query_embed or c.learned_decoder_patch_query_embed:
        raise ValueError("official_style_roundtrip: the release's embedding settings only")
    b = pixel_values.shape[0]
    x = model.patch_embed(pixel_values.to(model.patch_embed.proj.weight.dtype)) + model.encoder_patch_pe
    h = torch.cat([x, model.get_encoder_queries().expand(b, -1, -1).to(x.dtype)], dim=1)
    for block in model.encoder.blocks:
        h = _official_block(block, h)
    z = model.pre_quant_proj(h[:, -c.bottleneck_token_num :]).float()
    z = F.normalize(z, dim=-1)
    codebook = F.normalize(model.quantizer.embedding.weight.float(), dim=-1)
    probs = torch.softmax((z @ codebook.t()) / c.vq_stochastic_temperature, dim=-1)
    indices = probs.argmax(dim=-1)
    q = codebook[indices]
    _ = 0.25 * (q.detach() - z).pow(2).mean() + (q - z.detach()).pow(2).mean()
    _ = z + (q - z).detach()
    _ = z[:, 0].norm(dim=-1).mean().item(), z[:, -1].norm(dim=-1).mean().item()
    codes = F.normalize(F.embedding(indices, model.quantizer.embedding.weight.float()), dim=-1)
    latents = model.post_quant_proj(codes.to(model.post_quant_proj.weight.dtype)) + model.get_decoder_latent_pe()
    queries = model.get_decoder_patch_queries().expand(b, -1, -1).to(latents.dtype)
    h = torch.cat([latents, queries], dim=1)
    for block in model.decoder.blocks:
        h = _official_block(block, h)
    return model.unpatchify(model.output_layer(h[:, -queries.shape[1] :])), indices


def _record(bench, name, device, dtype, compiled, batch, **fields):
    rec = dict(bench=bench, config=name, device=str(device), dtype=str(dtype).replace("torch.", ""), compiled=compiled,
               batch=batch, **fields)
    if device.type == "cuda":
        rec["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return rec


def build(name, device):
    torch.manual_seed(0)
    config = LarpTokenizerConfig(**CONFIGS[name])
    model = LarpTokenizer(config).to(device)
    with torch.no_grad():  # the official init zeroes the output layer: give it weights
        model.output_layer.linear.weight.normal_(std=0.02)
    shape = (config.in_channels, config.frame_num, config.input_size, config.input_size)
    return model, shape


def bench_encode_decode(name, device, batch, steps, warmup, dtype, compile_model, official_style=False,
                        compile_backend="inductor", also_compiled=False):
    """Encode+decode clips/s (eval, deterministic VQ); with ``official_style`` also the official restatement,
    timed interleaved with ours repeat by repeat, and a summary record with the median ratio. ``also_compiled``
    (eager runs only) adds ours under ``torch.compile(fullgraph=True)`` to the same interleaved loop (its token ids
    checked against eager) and its ratio to the summary."""
    model, shape = build(name, device)
    infer = model.eval().to(dtype)
    encode, decode = infer.encode, infer.decode
    if compile_model:
        encode = torch.compile(encode, fullgraph=True, backend=compile_backend)
        decode = torch.compile(decode, fullgraph=True, backend=compile_backend)
    x = torch.rand(batch, *shape, device=device)

    @torch.no_grad()
    def ours():
        return decode(encode(x).indices)

    fns = {"ours": ours}
    if also_compiled and not compile_model:
        c_encode = torch.compile(infer.encode, fullgraph=True, backend=compile_backend)
        c_decode = torch.compile(infer.decode, fullgraph=True, backend=compile_backend)
        with torch.no_grad():
            if not torch.equal(c_encode(x).indices, infer.encode(x).indices):
                raise RuntimeError("the compiled encode and the eager one disagree on the token ids")
        fns["ours_compiled"] = torch.no_grad()(lambda: c_decode(c_encode(x).indices))
    if official_style:
        fns["official_style"] = lambda: official_style_roundtrip(infer, x)[0]
        if not torch.equal(official_style_roundtrip(infer, x)[1], infer.encode(x).indices):
            raise RuntimeError("official_style_roundtrip and encode disagree on the token ids")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {k: [] for k in fns}
    for _ in range(steps):  # interleaved: load from other processes hits both alike
        for k, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[k].append(time.perf_counter() - t0)
    params = sum(p.numel() for n, p in infer.named_parameters() if not n.startswith("prior."))
    out = []
    for k, ts in times.items():
        sec = statistics.median(ts)
        out.append(_record("tokenizer_encode_decode", name, device, dtype, compile_model or k == "ours_compiled", batch, mode=k,
                           seconds_per_batch=round(sec, 5), best_seconds_per_batch=round(min(ts), 5),
                           clips_per_s=round(batch / sec, 2), tokens=infer.config.bottleneck_token_num, params=params))
    if official_style:
        ratios = [o / t for o, t in zip(times["official_style"], times["ours"])]  # paired: same repeat, same load
        summary = dict(bench="tokenizer_encode_decode_summary", config=name, device=str(device), batch=batch,
                       repeats=steps, speedup_vs_official_style=round(statistics.median(ratios), 3),
                       speedup_min=round(min(ratios), 3), speedup_max=round(max(ratios), 3))
        if "ours_compiled" in times:
            ratios = [o / t for o, t in zip(times["official_style"], times["ours_compiled"])]
            summary.update(compiled_speedup_vs_official_style=round(statistics.median(ratios), 3),
                           compiled_speedup_min=round(min(ratios), 3), compiled_speedup_max=round(max(ratios), 3),
                           compile_backend=compile_backend)
        out.append(summary)
    return out


def bench_train(name, device, batch, steps, warmup, dtype, compile_model, compile_backend="inductor"):
    """Training step (forward with prior + backward + Adam), autocast in ``dtype`` off the CPU."""
    model, shape = build(name, device)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.5, 0.9))
    fwd = torch.compile(model, backend=compile_backend) if compile_model else model
    xt = torch.rand(batch, *shape, device=device)
    step_counter = [0]

    def train_step():
        step_counter[0] += 1
        step = torch.tensor(float(step_counter[0]), dtype=torch.float64) if compile_model else step_counter[0]
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            out = fwd(xt, global_step=step, max_steps=1000)
            loss = (out.reconstruction.float() - xt).abs().mean() + 0.1 * out.vq_loss + 0.06 * out.prior_loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sec = _timeit(train_step, device, warmup, steps)
    return [_record("tokenizer_train_step", name, device, dtype, compile_model, batch, seconds_per_step=round(sec, 5),
                    clips_per_s=round(batch / sec, 2))]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--configs", default=None, help="comma list of: " + ",".join(CONFIGS))
    p.add_argument("--measure", default=",".join(MEASUREMENTS), help="comma list of: " + ",".join(MEASUREMENTS))
    p.add_argument("--modes", default=None, help="comma list of eager,compiled (GPU default: both; CPU: eager)")
    p.add_argument("--compile_backend", default="inductor", help="torch.compile backend of the compiled mode")
    p.add_argument("--no_official_style", action="store_true", help="CPU: skip the official-style comparison")
    p.add_argument("--batch_size", type=int, default=None, help="encode+decode batch (default 32 GPU / 4 small / 1 larp_l)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: min(2, available))")
    p.add_argument("--no_compile", action="store_true", help="GPU: skip the compiled runs (same as --modes eager)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    measure = args.measure.split(",")
    if any(m not in MEASUREMENTS for m in measure):
        raise ValueError(f"`--measure` must be a comma list of {MEASUREMENTS}, got {args.measure!r}")
    gpu = device.type == "cuda"
    modes = (args.modes or ("eager" if args.no_compile or not gpu else "eager,compiled")).split(",")
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        names = (args.configs or "larp_l").split(",")
        steps, warmup = args.steps or 10, args.warmup or 3
    else:
        torch.set_num_threads(args.threads or min(2, torch.get_num_threads()))
        names = (args.configs or "small,larp_l").split(",")
        steps, warmup = args.steps or 5, args.warmup or 1
    dtype = torch.bfloat16 if gpu else torch.float32
    for name in names:
        batch_infer = args.batch_size or (32 if gpu else 1 if name == "larp_l" else 4)
        batch_train = 16 if gpu else batch_infer
        for mode in modes:
            compiled = mode == "compiled"
            records = []
            # CPU with both modes: ours eager, ours compiled and the official code in one interleaved loop
            together = not gpu and not args.no_official_style and {"eager", "compiled"} <= set(modes)
            if "encode_decode" in measure and not (together and compiled):
                official = not gpu and not compiled and not args.no_official_style
                records += bench_encode_decode(name, device, batch_infer, steps, warmup, dtype, compiled, official,
                                               args.compile_backend, also_compiled=together)
            if "train" in measure:
                records += bench_train(name, device, batch_train, steps, warmup, dtype, compiled, args.compile_backend)
            for rec in records:
                rec["torch_threads"] = torch.get_num_threads()
                print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
