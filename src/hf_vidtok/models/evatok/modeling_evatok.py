"""EVATok adaptive-length video tokenizer: a block-causal Q-Former that encodes every temporal block
of a clip with its own number of 1-D tokens (Xiong et al., CVPR 2026, Sec. 3.1 and App. K).

Layouts: videos ``(B, C, T, H, W)`` floats in ``[0, 1]``; an assignment is ``(B, num_blocks)`` long
token counts; variable-length tokens are packed block after block per clip and padded to the batch
maximum: ``indices (B, L_max)`` long (-1 on padding), ``attention_mask (B, L_max)`` (1 = token),
``token_counts (B, num_blocks)``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from ..hub_mixin import HubMixin
from ...modules.initialization import init_vit_module
from ...modules.input_checks import check_pixel_values
from ...modules.masks import block_causal_mask, packed_block_layout
from ...modules.patch_embed import PatchEmbed3D
from ...modules.pooling import multilevel_pool, pyramid_grids
from ...modules.position_embeddings import sincos_3d
from ...modules.qformer import QFormerLayer
from ...modules.vector_quantizer import VectorQuantizer
from .configuration_evatok import EvatokTokenizerConfig
from .modeling_evatok_router import build_tokenizer_router, resolve_assignment

__all__ = [
    "EvatokPreTrainedModel",
    "EvatokTokenizer",
    "EvatokEncoderOutput",
    "EvatokTokenizerOutput",
    "EvatokBlockOutput",
    "EvatokPrefixState",
]


@dataclass
class EvatokEncoderOutput(ModelOutput):
    """Output of :meth:`EvatokTokenizer.encode`.

    Args:
        indices (`(B, L_max)` long): token ids, block after block per clip, -1 on padding.
        attention_mask (`(B, L_max)` long): 1 for tokens, 0 for padding.
        token_counts (`(B, num_blocks)` long): tokens of every block.
        quantized (`(B, L_max, code_dim)` float32): l2-normalised codes with the straight-through
            gradient (padding rows are meaningless); input of :meth:`~EvatokTokenizer.decode_latents`.
        block_ids (`(B, L_max)` long): block of every position (padding: the last block).
        commitment_loss, codebook_loss (scalars): ``|sg(q) - z|^2`` and ``|q - sg(z)|^2`` over valid tokens.
        entropy_loss (scalar): MAGVIT-v2 entropy loss over valid tokens (0 outside training mode
            unless requested).
    """

    indices: torch.LongTensor | None = None
    attention_mask: torch.LongTensor | None = None
    token_counts: torch.LongTensor | None = None
    quantized: torch.FloatTensor | None = None
    block_ids: torch.LongTensor | None = None
    commitment_loss: torch.FloatTensor | None = None
    codebook_loss: torch.FloatTensor | None = None
    entropy_loss: torch.FloatTensor | None = None


@dataclass
class EvatokTokenizerOutput(ModelOutput):
    """Output of :meth:`EvatokTokenizer.forward`.

    Args:
        reconstruction (`(B, C, T, H, W)`): decoded video, unclamped.
        indices, attention_mask, token_counts, quantized, block_ids: as in :class:`EvatokEncoderOutput`.
        commitment_loss, codebook_loss, entropy_loss (scalars): VQ losses over valid tokens (unweighted).
        align_hidden_states (`(B, num_blocks, h, w, D)`, optional): output of decoder layer
            ``align_layer`` (for the representation alignment loss), when requested.
    """

    reconstruction: torch.FloatTensor | None = None
    indices: torch.LongTensor | None = None
    attention_mask: torch.LongTensor | None = None
    token_counts: torch.LongTensor | None = None
    quantized: torch.FloatTensor | None = None
    block_ids: torch.LongTensor | None = None
    commitment_loss: torch.FloatTensor | None = None
    codebook_loss: torch.FloatTensor | None = None
    entropy_loss: torch.FloatTensor | None = None
    align_hidden_states: torch.FloatTensor | None = None


@dataclass
class EvatokBlockOutput:
    """Output of :meth:`EvatokTokenizer.step_block` for one temporal block ``t``.

    Args:
        block_index (`int`): t (0-based).
        reconstruction (`(B, C, frames_per_block, H, W)`): the block's frames, unclamped.
        indices (`(B, count)` long): the block's token ids.
        quantized (`(B, count, code_dim)`): the block's codes.
    """

    block_index: int
    reconstruction: torch.Tensor
    indices: torch.Tensor
    quantized: torch.Tensor


@dataclass
class EvatokPrefixState:
    """Cached state after encoding/decoding blocks ``< num_blocks_done`` along one assignment prefix.

    Never modified in place: :meth:`EvatokTokenizer.step_block` returns a new child state, so a parent
    can be stepped again for its siblings (depth-first search over assignment prefixes).
    ``query_content`` and ``encoder_reference_kv`` do not depend on the assignment and are shared.
    """

    num_blocks_done: int
    token_counts: tuple
    query_content: torch.Tensor
    encoder_reference_kv: list
    encoder_kv: list = field(default_factory=list)
    decoder_kv: list = field(default_factory=list)
    decoder_token_kv: list = field(default_factory=list)
    decoder_carry: torch.Tensor | None = None  # (B, patches_per_block, D): the last block's carried queries


def _not_compiling() -> bool:
    return not torch.compiler.is_compiling()


class EvatokPreTrainedModel(HubMixin, PreTrainedModel):
    config_class = EvatokTokenizerConfig
    config: EvatokTokenizerConfig
    base_model_prefix = "evatok"
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = True
    _no_split_modules = ["QFormerLayer"]
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module):
        if init_vit_module(module, self.config.initializer_range):
            return
        if isinstance(module, VectorQuantizer):
            init.normal_(module.embedding.weight, std=1.0)
        elif isinstance(module, EvatokTokenizer):
            module._init_own_parameters()


class EvatokTokenizer(EvatokPreTrainedModel):
    """The EVATok tokenizer (see :class:`EvatokTokenizerConfig` for the architecture).

    * :meth:`encode` ``(pixel_values, assignment=None)`` -> :class:`EvatokEncoderOutput`.
    * :meth:`decode` ``(indices, token_counts)`` / :meth:`decode_latents` ``(quantized, token_counts)``
      -> video ``(B, C, T, H, W)``, unclamped; both also take a list of per-clip tensors.
    * :meth:`forward` ``(pixel_values, assignment=None, generator=None, output_align_hidden_states=False)``
      -> :class:`EvatokTokenizerOutput`; in training mode without an assignment every clip draws its
      own uniformly from all ``len(token_levels) ** num_blocks`` candidates (stage 1).
    * :meth:`init_prefix_state` / :meth:`step_block`: block-by-block encoding + decoding with KV caches
      for scoring assignment prefixes (stage 2).

    ``assignment`` is a ``(B, num_blocks)`` integer tensor of counts, one sequence of ``num_blocks``
    counts for the whole batch, or None (``config.default_assignment``). Shapes depend on it, so it is
    read on the host: a CPU tensor or a tuple gives tight padding; an accelerator tensor is validated
    on the device (no synchronisation) and padded to ``max_length`` (default: ``config.max_tokens``).

    ``torch.compile(..., fullgraph=True)`` of :meth:`encode`, :meth:`decode`, :meth:`decode_latents` and
    :meth:`forward` captures one graph for uniform and mixed assignments: while tracing, a tensor assignment
    is treated like an accelerator tensor (static padding to ``max_length`` / ``max_tokens`` with masks, checks
    by ``torch._assert_async`` inside the graph), so no shape depends on a tensor's values and nothing syncs;
    a tuple of ints is a constant and keeps tight padding. Padding does not change the valid positions' values
    (masks); pass ``max_length`` computed on the host (e.g. the batch's longest total rounded up) to pad less.
    """

    def __init__(self, config: EvatokTokenizerConfig):
        super().__init__(config)
        c = config
        d = c.hidden_size
        nb, maxq, nl = c.num_blocks, max(c.token_levels), len(c.token_levels)
        num_patches = nb * c.patches_per_block
        self.patch_embed = PatchEmbed3D(c.in_channels, d, c.patch_size, c.temporal_patch_size)
        # encoder references and queries
        self.reference_pos = nn.Parameter(torch.zeros(1, num_patches, d))
        self.query_proj = nn.Linear(d, d)
        self.query_index_embed = nn.Parameter(torch.zeros(maxq, d))
        self.query_block_embed = nn.Parameter(torch.zeros(nb, d))
        self.query_level_embed = nn.Parameter(torch.zeros(nl, d))
        self.encoder_layers = nn.ModuleList(
            [QFormerLayer(d, c.num_attention_heads, c.mlp_ratio, c.layer_norm_eps, c.qkv_bias) for _ in range(c.encoder_layers)]
        )
        self.encoder_norm = nn.LayerNorm(d, eps=c.layer_norm_eps)
        self.pre_quant_proj = nn.Linear(d, c.code_dim)
        # Loss weights live in the training objective: the quantiser returns unweighted terms, and the
        # entropy term is computed here (only when needed) from its logits.
        self.quantizer = VectorQuantizer(
            c.codebook_size,
            c.code_dim,
            commitment_loss_weight=1.0,
            codebook_loss_weight=1.0,
            entropy_loss_weight=0.0,
            entropy_loss_temperature=c.entropy_loss_temperature,
            l2_normalized=c.vq_l2_normalized,
            stochastic=c.vq_stochastic,
            stochastic_temperature=c.vq_stochastic_temperature,
            eval_deterministic=True,
        )
        self.post_quant_proj = nn.Linear(c.code_dim, d)
        # decoder
        self.token_norm = nn.LayerNorm(d, eps=c.layer_norm_eps)
        self.token_index_embed = nn.Parameter(torch.zeros(maxq, d))
        self.token_block_embed = nn.Parameter(torch.zeros(nb, d))
        self.token_level_embed = nn.Parameter(torch.zeros(nl, d))
        self.decoder_query_pos = nn.Parameter(torch.zeros(1, num_patches, d))
        if c.decoder_carry != "none":  # temporal reuse path (see EvatokTokenizerConfig.decoder_carry)
            self.decoder_carry_norm = nn.LayerNorm(d, eps=c.layer_norm_eps)
            self.decoder_carry_proj = nn.Linear(d, d)
            self.decoder_query_level_embed = nn.Parameter(torch.zeros(nl, d))
        if c.token_levels[0] == 0:  # the repeat level: a key every decoder query can attend to
            self.decoder_null_token = nn.Parameter(torch.zeros(1, 1, d))
        self.decoder_layers = nn.ModuleList(
            [QFormerLayer(d, c.num_attention_heads, c.mlp_ratio, c.layer_norm_eps, c.qkv_bias) for _ in range(c.decoder_layers)]
        )
        self.decoder_norm = nn.LayerNorm(d, eps=c.layer_norm_eps)
        self.head = nn.Linear(d, c.temporal_patch_size * c.patch_size**2 * c.in_channels)
        self.router = build_tokenizer_router(c)  # stage 4: the shipped router (config.router_config), or None
        self.gradient_checkpointing = False
        self.post_init()

    def _init_own_parameters(self):
        c = self.config
        gh, gw = c.patch_grid
        table = torch.from_numpy(sincos_3d(c.hidden_size, gh, c.num_blocks, gw)).float().unsqueeze(0)
        for p in (self.reference_pos, self.decoder_query_pos):
            init.copy_(p, table.to(p.device, p.dtype))
        tables = [self.query_index_embed, self.query_block_embed, self.query_level_embed,
                  self.token_index_embed, self.token_block_embed, self.token_level_embed]
        if c.token_levels[0] == 0:
            tables.append(self.decoder_null_token)
        if c.decoder_carry != "none":
            tables.append(self.decoder_query_level_embed)
            # the carry starts as a copy of the previous block's (normalised) features: static content needs
            # nothing more, moving content learns to change it
            init.eye_(self.decoder_carry_proj.weight)
            init.zeros_(self.decoder_carry_proj.bias)
        for p in tables:
            init.trunc_normal_(p, std=c.initializer_range)

    # ------------------------------------------------------------------ input checks
    def _check_pixel_values(self, pixel_values) -> torch.Tensor:
        c = self.config
        shape = (c.in_channels, c.num_frames, *c.image_hw)
        return check_pixel_values(pixel_values, shape=shape).to(self.patch_embed.proj.weight.dtype)

    def _levels(self, device) -> torch.Tensor:
        """``token_levels`` as a long tensor on ``device``, cached (a fresh host-to-device copy would sync)."""
        device = torch.device(device)
        cache = self.__dict__.setdefault("_levels_cache", {})
        if device not in cache:
            cache[device] = torch.tensor(self.config.token_levels, dtype=torch.long).to(device)
        return cache[device]

    @staticmethod
    def _to_device(t: torch.Tensor, device) -> torch.Tensor:
        """Host tensor -> ``device`` without waiting for queued device work (pinned, non-blocking copy)."""
        device = torch.device(device)
        if device.type == "cuda" and t.device.type == "cpu" and _not_compiling():
            return t.contiguous().pin_memory().to(device, non_blocking=True)
        return t.to(device)

    def _check_counts(self, counts, batch_size: int, name: str, max_length: int | None = None):
        """Validate ``counts`` (tensor (B, T) or (T,) / sequence of T ints / None = default assignment).

        Returns ``(counts (B, T) long on the model device, L_max, host_counts)``. ``host_counts`` is the
        ``(B, T)`` CPU tensor when the values are read on the host (eager mode, CPU tensor or sequence: checked
        there with a ``ValueError``; ``L_max`` is the longest total), else None. A tensor that is not read on the
        host (an accelerator tensor, or any tensor while ``torch.compile`` traces) is checked with
        ``torch._assert_async`` (no synchronisation; a ``RuntimeError`` naming the argument) and gives the
        static ``L_max = max_length`` or ``config.max_tokens``: shapes never depend on tensor values, so the
        traced graph has no data-dependent guard. A sequence of ints is a constant to the tracer: checked and
        summed in Python, it keeps tight padding when compiled too.
        """
        c = self.config
        nb, levels = c.num_blocks, c.token_levels
        device = self.patch_embed.proj.weight.device
        compiling = not _not_compiling()
        if counts is None:
            counts = c.default_assignment
        if max_length is not None:
            if isinstance(max_length, bool) or not isinstance(max_length, (numbers.Integral, torch.SymInt)):
                raise TypeError(f"`max_length` must be an int, got {max_length!r}")
            max_length = max_length if isinstance(max_length, torch.SymInt) else int(max_length)
            if max_length <= 0:
                raise ValueError(f"`max_length` must be positive, got {max_length}")
        if torch.is_tensor(counts):
            if counts.is_floating_point() or counts.is_complex() or counts.dtype == torch.bool:
                raise TypeError(f"`{name}` must be an integer tensor of token counts, got dtype {counts.dtype}")
            if counts.dim() == 1 and counts.shape[0] == nb:
                counts = counts.unsqueeze(0).expand(batch_size, nb)
            if counts.dim() != 2 or tuple(counts.shape) != (batch_size, nb):
                raise ValueError(
                    f"`{name}` must have shape (B, num_blocks) = ({batch_size}, {nb}), got {tuple(counts.shape)}"
                )
            host = counts.long() if counts.device.type == "cpu" and not compiling else None
            if host is not None:
                bad = ~torch.isin(host, torch.tensor(levels))
                if bool(bad.any()):
                    raise ValueError(f"`{name}` values must be token levels {levels}, got {sorted(set(host[bad].tolist()))}")
                length = int(host.sum(1).max())
            else:
                length = c.max_tokens if max_length is None else max_length
                torch._assert_async(
                    torch.isin(counts, self._levels(counts.device)).all(), f"`{name}` values must be token levels {levels}"
                )
                if max_length is not None:
                    torch._assert_async(
                        (counts.sum(1) <= max_length).all(), f"`max_length` is shorter than a clip of `{name}`"
                    )
        else:
            if isinstance(counts, (str, bytes)) or not hasattr(counts, "__len__"):
                raise TypeError(f"`{name}` must be a (B, {nb}) tensor, a sequence of {nb} ints or None, got {counts!r}")
            seq = list(counts)
            if len(seq) != nb or not all(isinstance(k, int) and not isinstance(k, bool) for k in seq):
                raise ValueError(f"`{name}` must hold {nb} ints (one per block), got {seq!r}")
            if any(k not in levels for k in seq):
                raise ValueError(f"`{name}` values must be token levels {levels}, got {sorted(set(k for k in seq if k not in levels))}")
            length = sum(seq)
            counts = torch.tensor(seq, dtype=torch.long).unsqueeze(0).expand(batch_size, nb)
            host = None if compiling else counts
        if max_length is not None:
            if max_length < length:  # values read on the host (a device tensor already has length == max_length)
                raise ValueError(f"`max_length` ({max_length}) is shorter than the longest clip ({length} tokens)")
            length = max_length
        counts = self._to_device(counts.long().contiguous(), device)
        return counts, length, host

    def random_assignment(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-clip assignments drawn uniformly from all candidates: ``(batch_size, num_blocks)`` long on
        ``generator``'s device (CPU without one). Uniform over ``m ** T`` candidates = independent uniform
        levels per block."""
        device = generator.device if generator is not None else torch.device("cpu")
        idx = torch.randint(len(self.config.token_levels), (batch_size, self.config.num_blocks), generator=generator, device=device)
        return self._levels(device)[idx]

    # ------------------------------------------------------------------ encoder
    def _embed_patches(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Patch embeddings ``(B, num_blocks * patches_per_block, D)`` of the pixels centred to ``[-1, 1]``.

        Centring matters here: on raw ``[0, 1]`` pixels every patch embedding is dominated by one shared
        direction (brightness times the summed weights), the encoder LayerNorm and the l2-normalised codes
        erase the scale, so all tokens start on (nearly) the same code and the codebook collapses (8 codes
        over 512 tokens at init, 1 after 50 steps; 36 at init and rising when centred).
        """
        return self.patch_embed(pixel_values * 2.0 - 1.0)

    def _query_content(self, patches: torch.Tensor) -> torch.Tensor:
        """Pyramid-pooled query content of every block: ``(B, num_blocks, max_level, D)``."""
        c = self.config
        b, d = patches.shape[0], patches.shape[-1]
        gh, gw = c.patch_grid
        # no LayerNorm before pooling: it would erase the brightness of flat patches (LN(c * w) = LN(w))
        feat = patches.reshape(b * c.num_blocks, gh, gw, d).permute(0, 3, 1, 2)
        pooled = multilevel_pool(feat, max(c.token_levels))
        return self.query_proj(pooled).view(b, c.num_blocks, -1, d)

    def _references(self, patches: torch.Tensor):
        """Encoder references (the raw patch embeddings: a LayerNorm would erase flat patches' brightness)
        and their key positions."""
        return patches, self.reference_pos.to(patches.dtype)

    def _patch_block_ids(self, device) -> torch.Tensor:
        return torch.arange(self.config.num_blocks, device=device).repeat_interleave(self.config.patches_per_block)

    def _run_layer(self, layer, *args, **kwargs):
        if self.gradient_checkpointing and self.training:
            return checkpoint(layer, *args, use_reentrant=False, **kwargs)
        return layer(*args, **kwargs)

    def _encode_packed(self, pixel_values, counts, length, generator=None, compute_entropy_loss=None):
        patches = self._embed_patches(pixel_values)
        b = patches.shape[0]
        layout = packed_block_layout(counts, length)
        levels = self._levels(counts.device)
        level_ids = torch.searchsorted(levels, counts).gather(1, layout.block_ids)
        content = self._query_content(patches)
        maxq = content.shape[2]
        flat = (layout.block_ids * maxq + layout.positions).unsqueeze(-1).expand(-1, -1, content.shape[-1])
        h = content.reshape(b, -1, content.shape[-1]).gather(1, flat)
        query_pos = (
            self.query_index_embed[layout.positions]
            + self.query_block_embed[layout.block_ids]
            + self.query_level_embed[level_ids]
        ).to(h.dtype)
        refs, ref_pos = self._references(patches)
        self_mask = block_causal_mask(layout.block_ids, layout.block_ids, layout.valid)
        cross_mask = block_causal_mask(layout.block_ids, self._patch_block_ids(h.device)[None])
        for layer in self.encoder_layers:
            ref_kv = layer.reference_kv(refs, ref_pos)
            h = self._run_layer(layer, h, ref_kv, self_mask=self_mask, cross_mask=cross_mask, query_pos=query_pos)
        z = self.pre_quant_proj(self.encoder_norm(h))
        if compute_entropy_loss is None:
            compute_entropy_loss = self.training
        vq = self.quantizer(z, mask=layout.valid, generator=generator, return_logits=compute_entropy_loss)
        if compute_entropy_loss:
            entropy = self.quantizer._entropy_loss(vq.logits, layout.valid)
        else:
            entropy = vq.commitment_loss.new_zeros(())
        indices = torch.where(layout.valid, vq.indices, torch.full_like(vq.indices, -1))
        return EvatokEncoderOutput(
            indices=indices,
            attention_mask=layout.valid.long(),
            token_counts=counts,
            quantized=vq.quantized,
            block_ids=layout.block_ids,
            commitment_loss=vq.commitment_loss,
            codebook_loss=vq.codebook_loss,
            entropy_loss=entropy,
        ), layout

    def encode(
        self,
        pixel_values: torch.Tensor,
        assignment=None,
        generator: torch.Generator | None = None,
        max_length: int | None = None,
        compute_entropy_loss: bool | None = None,
        length_group_size: int | None = 8,
        **selection,
    ) -> EvatokEncoderOutput:
        """Tokenize ``pixel_values (B, C, T, H, W)`` in [0, 1] with ``assignment`` (see the class docstring).

        Without ``assignment``, a tokenizer that ships a router lets it choose; ``selection`` (``w_q``,
        ``max_tokens``, ``quality_target``, ``target_mean_tokens``, ``allowed_prefix``, ``length_multiplier``)
        goes to :meth:`EvatokRouter.select` (see ``modeling_evatok_router.resolve_assignment``).

        ``max_length`` pads to a fixed ``L_max`` (>= every clip's total); ``generator`` drives stochastic
        code selection (``config.vq_stochastic``, training mode). ``compute_entropy_loss`` defaults to
        ``self.training``. A batch of mixed lengths known on the host is run in length-sorted groups of at
        most ``length_group_size`` clips, each padded to its own longest clip (same results; less padding);
        0 or None runs one padded batch (always the case with the entropy loss or ``max_length``).
        """
        assignment = resolve_assignment(self, pixel_values, assignment, **selection)
        pixel_values = self._check_pixel_values(pixel_values)
        counts, length, host = self._check_counts(assignment, pixel_values.shape[0], "assignment", max_length)
        if compute_entropy_loss is None:
            compute_entropy_loss = self.training
        groups = None if compute_entropy_loss or max_length is not None else self._length_groups(host, length_group_size)
        if groups is None:
            return self._encode_packed(pixel_values, counts, length, generator, compute_entropy_loss)[0]
        totals = host.sum(1)
        b, dev = pixel_values.shape[0], counts.device
        out = EvatokEncoderOutput(
            indices=torch.full((b, length), -1, dtype=torch.long, device=dev),
            attention_mask=torch.zeros(b, length, dtype=torch.long, device=dev),
            token_counts=counts,
            block_ids=torch.full((b, length), self.config.num_blocks - 1, dtype=torch.long, device=dev),
        )
        commitment = codebook = 0.0
        for idx in groups:
            n = int(totals[idx].sum())
            idx_dev = self._to_device(idx, dev)
            part = self._encode_packed(pixel_values[idx_dev], counts[idx_dev], int(totals[idx].max()), generator, False)[0]
            if out.quantized is None:
                out.quantized = part.quantized.new_zeros(b, length, part.quantized.shape[-1])
            width = part.indices.shape[1]
            for name in ("indices", "attention_mask", "block_ids", "quantized"):
                getattr(out, name)[idx_dev, :width] = getattr(part, name)
            commitment = commitment + part.commitment_loss * n
            codebook = codebook + part.codebook_loss * n
        total = float(totals.sum())
        out.commitment_loss, out.codebook_loss = commitment / total, codebook / total
        out.entropy_loss = out.commitment_loss.new_zeros(())
        return out

    def _length_groups(self, host_counts, group_size):
        """Length-sorted groups (CPU index tensors) of a mixed batch, or None (one padded batch)."""
        if host_counts is None or not group_size or host_counts.shape[0] <= group_size:
            return None
        totals = host_counts.sum(1)
        if bool((totals == totals[0]).all()):
            return None
        order = torch.argsort(totals, stable=True)
        return list(order.split(int(group_size)))

    # ------------------------------------------------------------------ decoder
    def _decode_tokens(self, tokens, layout, counts, align_layer: int | None = None):
        """Decoder on ``tokens (B, L, D)`` (after ``post_quant_proj``) -> (video, hidden states of ``align_layer``)."""
        c = self.config
        b, _, d = tokens.shape
        nb, num_patches = c.num_blocks, c.num_blocks * c.patches_per_block
        block_levels = torch.searchsorted(self._levels(counts.device), counts)  # (B, nb) index into token_levels
        level_ids = block_levels.gather(1, layout.block_ids)
        refs = self.token_norm(tokens)
        token_pos = (
            self.token_index_embed[layout.positions]
            + self.token_block_embed[layout.block_ids]
            + self.token_level_embed[level_ids]
        ).to(refs.dtype)
        query_pos = self.decoder_query_pos.to(tokens.dtype)
        # queries = a token of the block + the 3-D position table (GigaTok ViTDecoder): the positions
        # must enter the residual stream, not only the attention q/k, or every patch of a block starts
        # identical and only attention weights can tell them apart (extra tokens then go unused)
        source = layout.starts.unsqueeze(-1) + self._query_source_offsets(block_levels)
        if tokens.shape[1]:
            h = tokens.gather(1, source.clamp(max=tokens.shape[1] - 1).reshape(b, num_patches, 1).expand(-1, -1, d))
        else:  # every block repeats: no token at all
            h = tokens.new_zeros(b, num_patches, d)
        if c.token_levels[0] == 0:  # a repeat block has no token to start from
            repeat = (block_levels == 0).repeat_interleave(c.patches_per_block, dim=1).unsqueeze(-1)
            h = h.masked_fill(repeat, 0.0)
            refs, token_pos = self._with_null_token(refs, token_pos)
        ref_kv = [layer.reference_kv(refs, token_pos) for layer in self.decoder_layers]
        patch_blocks = self._patch_block_ids(h.device)[None]
        if c.decoder_carry == "output":
            h, hidden = self._decode_blocks_in_turn(h, ref_kv, block_levels, layout, query_pos, align_layer)
        else:
            if c.decoder_carry == "query":
                carried, previous = [], None
                for t in range(nb):
                    previous = self._carry_block(h[:, t * c.patches_per_block : (t + 1) * c.patches_per_block],
                                                 block_levels[:, t], previous)
                    carried.append(previous)
                h = torch.cat(carried, dim=1)
            h = h + query_pos
            self_mask = block_causal_mask(patch_blocks, patch_blocks)
            cross_mask = self._token_cross_mask(patch_blocks, layout)
            hidden = h if align_layer == 0 else None
            for i, layer in enumerate(self.decoder_layers):
                h = self._run_layer(layer, h, ref_kv[i], self_mask=self_mask, cross_mask=cross_mask, query_pos=query_pos)
                if align_layer == i + 1:
                    hidden = h
        video = self.unpatchify(self.head(self.decoder_norm(h)))
        if hidden is not None:
            gh, gw = c.patch_grid
            hidden = hidden.view(b, nb, gh, gw, d)
        return video, hidden

    def _decode_blocks_in_turn(self, starts, ref_kv, block_levels, layout, query_pos, align_layer):
        """``decoder_carry="output"``: decode block after block, each starting from its own tokens plus the map of
        the previous block's decoded features (:meth:`_carry_block`). Every block attends to the cached
        self-attention keys/values of the blocks before it and to the tokens of the blocks up to it: the attention
        of the one-pass decoder, block-causal. Returns the decoded features ``(B, num_blocks * P, D)`` and the
        ``align_layer`` output (or None)."""
        c = self.config
        n = c.patches_per_block
        past = [None] * len(self.decoder_layers)
        outputs, aligned, previous = [], [], None
        for t in range(c.num_blocks):
            pos = query_pos[:, t * n : (t + 1) * n]
            h = self._carry_block(starts[:, t * n : (t + 1) * n], block_levels[:, t], previous) + pos
            cross_mask = self._token_cross_mask(torch.full((1, n), t, device=h.device), layout)
            if align_layer == 0:
                aligned.append(h)
            for i, layer in enumerate(self.decoder_layers):
                h, past[i] = self._run_layer(layer, h, ref_kv[i], cross_mask=cross_mask, query_pos=pos,
                                             past_kv=past[i], return_kv=True)
                if align_layer == i + 1:
                    aligned.append(h)
            if previous is not None and c.token_levels[0] == 0:  # the repeat level: block t - 1's features
                h = torch.where((block_levels[:, t] == 0)[:, None, None], previous, h)
            outputs.append(h)
            previous = h
        return torch.cat(outputs, dim=1), (torch.cat(aligned, dim=1) if aligned else None)

    def _carry_block(self, start: torch.Tensor, levels: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        """Block ``t``'s starting decoder queries with the temporal carry: its own ``start (B, P, D)`` + the learned
        embedding of its level (``levels (B,)``) + the map of block ``t - 1``'s ``previous`` features (its carried
        starting queries, or its decoded features: ``config.decoder_carry``)."""
        out = start + self.decoder_query_level_embed[levels].unsqueeze(1).to(start.dtype)
        if previous is not None:
            out = out + self.decoder_carry_proj(self.decoder_carry_norm(previous))
        return out

    def _with_null_token(self, refs: torch.Tensor, token_pos: torch.Tensor):
        """``(refs, token_pos)`` ``(B, L, D)`` with the learned null token (zero position) prepended (repeat level)."""
        null = self.decoder_null_token.to(refs.dtype).expand(refs.shape[0], 1, -1)
        return torch.cat([null, refs], dim=1), torch.cat([torch.zeros_like(null), token_pos.expand_as(refs)], dim=1)

    def _token_cross_mask(self, query_blocks: torch.Tensor, layout) -> torch.Tensor:
        """Decoder cross-attention mask of queries in ``query_blocks`` over the packed tokens (block-causal, valid
        tokens only), with an always-visible first column for the null token when the repeat level exists."""
        mask = block_causal_mask(query_blocks, layout.block_ids, layout.valid)
        if self.config.token_levels[0] == 0:
            mask = torch.cat([mask.new_ones(*mask.shape[:-1], 1), mask], dim=-1)
        return mask

    def _query_source_offsets(self, level_ids):
        """Which token of its block every decoder query starts from: ``level_ids`` (any shape, index into
        ``token_levels``) -> offsets ``(*level_ids.shape, patches_per_block)`` within the block.

        ``decoder_query_init="first_token"`` (the paper): token 0 for every patch. ``"pyramid_cell"``: the
        token of the finest pyramid cell of the block's level that contains the patch (the block's own
        tokens only, so block causality holds).
        """
        device = level_ids.device if torch.is_tensor(level_ids) else self.decoder_query_pos.device
        cache = self.__dict__.setdefault("_query_source_cache", {})
        if device not in cache:
            c = self.config
            gh, gw = c.patch_grid
            rows = []
            for k in c.token_levels:
                if k == 0:  # the repeat level: no token (the decoder starts from zeros)
                    rows.append([0] * (gh * gw))
                elif c.decoder_query_init == "pyramid_cell":
                    rh, rw = pyramid_grids(gh, gw, k)[-1]
                    offset = k - rh * rw
                    rows.append([offset + (i * rh // gh) * rw + (j * rw // gw) for i in range(gh) for j in range(gw)])
                else:
                    rows.append([0] * (gh * gw))
            cache[device] = torch.tensor(rows, dtype=torch.long).to(device)
        return cache[device][level_ids]

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, t*h*w, pt*p*p*C)`` (channel fastest) -> ``(B, C, t*pt, H, W)`` for any number t of blocks."""
        c = self.config
        gh, gw = c.patch_grid
        pt, p = c.temporal_patch_size, c.patch_size
        b = x.shape[0]
        t = x.shape[1] // (gh * gw)
        x = x.reshape(b, t, gh, gw, pt, p, p, c.in_channels).permute(0, 7, 1, 4, 2, 5, 3, 6)
        return x.reshape(b, c.in_channels, t * pt, gh * p, gw * p)

    def _pack(self, items, token_counts, name: str, trailing: tuple):
        """List of per-clip tensors -> (padded (B, L_max, *trailing), counts (B, T), L_max); validates on the host."""
        if len(items) == 0:
            raise ValueError(f"`{name}` must hold at least one clip")
        if token_counts is None:
            raise ValueError("`token_counts` is required to decode variable-length tokens")
        b = len(items)
        counts, length, host = self._check_counts(token_counts, b, "token_counts")
        totals = host.sum(1).tolist() if host is not None else None
        for i, item in enumerate(items):
            if not torch.is_tensor(item):
                raise TypeError(f"`{name}[{i}]` must be a torch.Tensor, got {type(item).__name__}")
            if item.dim() != 1 + len(trailing) or tuple(item.shape[1:]) != trailing:
                raise ValueError(f"`{name}[{i}]` must have shape (L_i, {', '.join(map(str, trailing))})".replace(", )", ")") + f", got {tuple(item.shape)}")
            if totals is not None and item.shape[0] != totals[i]:
                raise ValueError(
                    f"`{name}[{i}]` has {item.shape[0]} tokens but `token_counts[{i}]` sums to {totals[i]}"
                )
        length = max(item.shape[0] for item in items)
        fill = -1 if not trailing else 0
        out = items[0].new_full((b, length) + trailing, fill)
        for i, item in enumerate(items):
            out[i, : item.shape[0]] = item.to(out.device)
        return out, counts, length, host

    def _check_token_tensor(self, values, token_counts, name: str, trailing: tuple):
        """Padded tensor input -> (values, counts, layout)."""
        if isinstance(values, (list, tuple)):
            values, counts, length, host = self._pack(list(values), token_counts, name, trailing)
        else:
            if not torch.is_tensor(values):
                raise TypeError(f"`{name}` must be a torch.Tensor or a list of per-clip tensors, got {type(values).__name__}")
            if values.dim() != 2 + len(trailing) or tuple(values.shape[2:]) != trailing:
                raise ValueError(f"`{name}` must have shape (B, L_max{''.join(', ' + str(s) for s in trailing)}), got {tuple(values.shape)}")
            if values.shape[0] == 0:
                raise ValueError(f"`{name}` must hold at least one clip (batch size 0)")
            if token_counts is None:
                raise ValueError("`token_counts` is required to decode variable-length tokens")
            counts, length, host = self._check_counts(token_counts, values.shape[0], "token_counts")
            if host is None:
                length = values.shape[1]
            if length > values.shape[1]:
                raise ValueError(
                    f"`token_counts` needs {length} tokens for its longest clip but `{name}` has only {values.shape[1]} positions"
                )
            length = values.shape[1]
        layout = packed_block_layout(counts, length)
        if host is None:
            torch._assert_async((layout.lengths <= length).all(), f"`token_counts` need more tokens than `{name}` holds")
        return values, counts, layout, host

    def decode_latents(self, quantized, token_counts, length_group_size: int | None = 8) -> torch.Tensor:
        """Decode codes ``quantized (B, L_max, code_dim)`` (or a list of ``(L_i, code_dim)``) laid out by
        ``token_counts (B, num_blocks)`` -> video ``(B, C, T, H, W)``, unclamped. Padding rows are ignored;
        ``length_group_size`` as in :meth:`encode`."""
        c = self.config
        if torch.is_tensor(quantized) and not quantized.is_floating_point():
            raise TypeError(f"`quantized` must be a floating-point tensor, got dtype {quantized.dtype}")
        quantized, counts, layout, host = self._check_token_tensor(quantized, token_counts, "quantized", (c.code_dim,))
        tokens = self.post_quant_proj(quantized.to(self.post_quant_proj.weight.dtype))
        return self._decode_grouped(tokens, counts, layout, host, length_group_size)

    def decode(self, indices, token_counts, length_group_size: int | None = 8) -> torch.Tensor:
        """Decode token ids ``indices (B, L_max)`` (-1 padding) or a list of per-clip 1-D id tensors, laid
        out by ``token_counts (B, num_blocks)`` -> video ``(B, C, T, H, W)``, unclamped.
        ``length_group_size`` as in :meth:`encode`."""
        items = indices if isinstance(indices, (list, tuple)) else [indices]
        for item in items:
            if torch.is_tensor(item) and (item.is_floating_point() or item.is_complex() or item.dtype == torch.bool):
                raise TypeError(f"`indices` must hold integer token ids, got dtype {item.dtype}")
        indices, counts, layout, host = self._check_token_tensor(indices, token_counts, "indices", ())
        indices = indices.long()
        self._check_index_values(indices, layout)
        codes = self.quantizer.lookup(torch.where(layout.valid, indices, torch.zeros_like(indices)))
        tokens = self.post_quant_proj(codes.to(self.post_quant_proj.weight.dtype))
        return self._decode_grouped(tokens, counts, layout, host, length_group_size)

    def _decode_grouped(self, tokens, counts, layout, host, length_group_size):
        groups = self._length_groups(host, length_group_size)
        if groups is None:
            return self._decode_tokens(tokens, layout, counts)[0]
        totals = host.sum(1)
        video = None
        for idx in groups:
            width = int(totals[idx].max())
            idx_dev = self._to_device(idx, tokens.device)
            part_counts = counts[idx_dev]
            part = self._decode_tokens(tokens[idx_dev, :width], packed_block_layout(part_counts, width), part_counts)[0]
            if video is None:
                video = part.new_empty((tokens.shape[0],) + part.shape[1:])
            video[idx_dev] = part
        return video

    def _check_index_values(self, indices, layout):
        k = self.config.codebook_size
        ok_valid = (indices >= 0) & (indices < k)
        ok = torch.where(layout.valid, ok_valid, indices == -1)
        if indices.numel() == 0:
            return
        if indices.device.type == "cpu" and _not_compiling():
            if not bool(ok.all()):
                bad_valid = (~ok_valid & layout.valid).any()
                if bool(bad_valid):
                    vals = indices[layout.valid & ~ok_valid]
                    raise ValueError(
                        f"`indices` must lie in [0, {k}) (codebook size) at the token positions given by "
                        f"`token_counts`, got {sorted(set(vals.tolist()))[:8]}"
                    )
                raise ValueError(
                    "`indices` hold tokens beyond the lengths given by `token_counts` (padding must be -1): "
                    "the counts do not match the indices' lengths"
                )
        else:
            torch._assert_async(ok.all(), "`indices` outside the codebook or not matching `token_counts`")

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        pixel_values: torch.Tensor,
        assignment=None,
        generator: torch.Generator | None = None,
        output_align_hidden_states: bool = False,
        align_layer: int | None = None,
        max_length: int | None = None,
        compute_entropy_loss: bool | None = None,
        return_dict: bool = True,
    ) -> EvatokTokenizerOutput | tuple:
        """Encode -> quantise -> decode.

        Args:
            pixel_values: ``(B, C, T, H, W)`` in [0, 1].
            assignment: as in :meth:`encode`; None in training mode draws one per clip uniformly from all
                candidates with ``generator`` (stage 1), None in eval mode is ``config.default_assignment``.
            generator: drives the assignment draw (on its device) and stochastic code selection.
            output_align_hidden_states: return decoder layer ``align_layer`` (default
                ``config.align_decoder_layer``) as ``align_hidden_states (B, num_blocks, h, w, D)``.
            max_length, compute_entropy_loss: as in :meth:`encode`.
        """
        pixel_values = self._check_pixel_values(pixel_values)
        b = pixel_values.shape[0]
        if assignment is None and self.training:
            assignment = self.random_assignment(b, generator)
        counts, length, _ = self._check_counts(assignment, b, "assignment", max_length)
        vq_generator = generator if generator is not None and generator.device == counts.device else None
        enc, layout = self._encode_packed(pixel_values, counts, length, vq_generator, compute_entropy_loss)
        if output_align_hidden_states:
            align_layer = self.config.align_decoder_layer if align_layer is None else int(align_layer)
            if not 0 <= align_layer <= self.config.decoder_layers:
                raise ValueError(f"`align_layer` must be in [0, {self.config.decoder_layers}], got {align_layer}")
        else:
            align_layer = None
        tokens = self.post_quant_proj(enc.quantized.to(self.post_quant_proj.weight.dtype))
        reconstruction, hidden = self._decode_tokens(tokens, layout, counts, align_layer)
        out = EvatokTokenizerOutput(
            reconstruction=reconstruction,
            indices=enc.indices,
            attention_mask=enc.attention_mask,
            token_counts=enc.token_counts,
            quantized=enc.quantized,
            block_ids=enc.block_ids,
            commitment_loss=enc.commitment_loss,
            codebook_loss=enc.codebook_loss,
            entropy_loss=enc.entropy_loss,
            align_hidden_states=hidden,
        )
        return out if return_dict else out.to_tuple()

    # ------------------------------------------------------------------ stage-2 prefix API
    def init_prefix_state(self, pixel_values: torch.Tensor) -> EvatokPrefixState:
        """Assignment-independent parts of ``pixel_values`` (patch embeddings, pooled query content and
        every encoder layer's reference K/V), computed once; the root of :meth:`step_block`."""
        pixel_values = self._check_pixel_values(pixel_values)
        patches = self._embed_patches(pixel_values)
        refs, ref_pos = self._references(patches)
        token_kv = [None] * len(self.decoder_layers)
        if self.config.token_levels[0] == 0:  # the null token comes first among the decoder's keys
            none = patches.new_zeros(patches.shape[0], 0, patches.shape[-1])  # (no tokens yet)
            null, null_pos = self._with_null_token(none, none)
            token_kv = [layer.reference_kv(null, null_pos) for layer in self.decoder_layers]
        return EvatokPrefixState(
            num_blocks_done=0,
            token_counts=(),
            query_content=self._query_content(patches),
            encoder_reference_kv=[layer.reference_kv(refs, ref_pos) for layer in self.encoder_layers],
            encoder_kv=[None] * len(self.encoder_layers),
            decoder_kv=[None] * len(self.decoder_layers),
            decoder_token_kv=token_kv,
        )

    def step_block(self, state: EvatokPrefixState, count: int) -> tuple[EvatokBlockOutput, EvatokPrefixState]:
        """Encode, quantise and decode the next block ``t = state.num_blocks_done`` with ``count`` tokens for
        every clip, attending to the cached K/V of blocks ``< t``. Returns the block's output and the child
        state (``state`` itself stays valid). Equals the full forward's block ``t`` along the same path."""
        c = self.config
        if not isinstance(state, EvatokPrefixState):
            raise TypeError(f"`state` must be an EvatokPrefixState from init_prefix_state(), got {type(state).__name__}")
        t = state.num_blocks_done
        if t >= c.num_blocks:
            raise ValueError(f"`state` already holds all {c.num_blocks} blocks")
        if isinstance(count, bool) or not isinstance(count, int) or count not in c.token_levels:
            raise ValueError(f"`count` must be one of the token levels {c.token_levels}, got {count!r}")
        level = c.token_levels.index(count)
        n = c.patches_per_block
        b = state.query_content.shape[0]
        if count == 0:  # the repeat level: no queries, nothing added to the encoder's cache
            encoder_kv = list(state.encoder_kv)
            dtype = self.post_quant_proj.weight.dtype
            indices = torch.zeros(b, 0, dtype=torch.long, device=state.query_content.device)
            quantized = state.query_content.new_zeros(b, 0, self.config.code_dim)
            tokens = state.query_content.new_zeros(b, 0, self.config.hidden_size).to(dtype)
        else:
            # encoder: block t's queries against [cached blocks < t ; own] and the references of blocks <= t
            h = state.query_content[:, t, :count]
            query_pos = (
                self.query_index_embed[:count] + self.query_block_embed[t] + self.query_level_embed[level]
            ).to(h.dtype)[None]
            encoder_kv = []
            for i, layer in enumerate(self.encoder_layers):
                rk, rv = state.encoder_reference_kv[i]
                ref_kv = (rk[:, :, : (t + 1) * n], rv[:, :, : (t + 1) * n])
                h, kv = layer(h, ref_kv, query_pos=query_pos, past_kv=state.encoder_kv[i], return_kv=True)
                encoder_kv.append(kv)
            z = self.pre_quant_proj(self.encoder_norm(h))
            vq = self.quantizer(z, return_logits=False)
            indices, quantized = vq.indices, vq.quantized
            tokens = self.post_quant_proj(quantized.to(self.post_quant_proj.weight.dtype))
        # decoder: block t's 3-D queries from its first token
        refs = self.token_norm(tokens)
        token_pos = (
            self.token_index_embed[:count] + self.token_block_embed[t] + self.token_level_embed[level]
        ).to(refs.dtype)[None]
        query_pos = self.decoder_query_pos[:, t * n : (t + 1) * n].to(tokens.dtype)
        h = tokens.new_zeros(b, n, tokens.shape[-1]) if count == 0 else tokens[:, self._query_source_offsets(level)]
        carry = None
        if c.decoder_carry != "none":
            h = self._carry_block(h, torch.full((b,), level, dtype=torch.long, device=h.device), state.decoder_carry)
            carry = h  # "query": the next block carries these starting queries
        h = h + query_pos
        decoder_kv, decoder_token_kv = [], []
        for i, layer in enumerate(self.decoder_layers):
            tk, tv = layer.reference_kv(refs, token_pos)
            past = state.decoder_token_kv[i]
            if past is not None:
                tk, tv = torch.cat([past[0], tk], dim=2), torch.cat([past[1], tv], dim=2)
            decoder_token_kv.append((tk, tv))
            h, kv = layer(h, (tk, tv), query_pos=query_pos, past_kv=state.decoder_kv[i], return_kv=True)
            decoder_kv.append(kv)
        if c.decoder_carry == "output":
            if count == 0 and state.decoder_carry is not None:  # the repeat level: block t - 1's features
                h = state.decoder_carry
            carry = h  # the next block carries these decoded features
        block = self.unpatchify(self.head(self.decoder_norm(h)))
        child = EvatokPrefixState(
            num_blocks_done=t + 1,
            token_counts=state.token_counts + (count,),
            query_content=state.query_content,
            encoder_reference_kv=state.encoder_reference_kv,
            encoder_kv=encoder_kv,
            decoder_kv=decoder_kv,
            decoder_token_kv=decoder_token_kv,
            decoder_carry=carry,
        )
        return EvatokBlockOutput(block_index=t, reconstruction=block, indices=indices, quantized=quantized), child
