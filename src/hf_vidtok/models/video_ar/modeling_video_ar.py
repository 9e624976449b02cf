"""Autoregressive generator over video tokens (LARP ``LARP_AR``, LlamaGen "llama-abs" architecture).

A Llama decoder (RMSNorm, fused-qkv causal attention, SwiGLU, no biases, no RoPE) with learned
absolute positions over ``[condition prefix ; visual tokens]``. The prefix is one class embedding
(class-conditional, with a null class for classifier-free guidance) or the token ids of context
frames followed by a separator (frame prediction).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import CausalLMOutput

from hf_vidtok.models.hub_mixin import HubMixin
from hf_vidtok.modules.kv_cache import StaticKVCache
from hf_vidtok.modules.llama_block import LlamaBlock
from hf_vidtok.modules.position_embeddings import sincos_1d
from hf_vidtok.modules.rms_norm import RMSNorm
from .configuration_video_ar import VideoARGeneratorConfig
from .fused_step_video_ar import MATMUL_DTYPES
from .length_tokens_video_ar import LengthTokenLogitsMask, parse_length_token_sequence
from .sampling_video_ar import decode_with_cache, decode_without_cache

__all__ = ["VideoARPreTrainedModel", "VideoARGenerator", "class_label_ids"]


def class_label_ids(
    labels, config: VideoARGeneratorConfig, *, name: str = "class_labels", allow_null: bool = False,
    allow_negative: bool = False,
) -> list[int]:
    """Class ids for one label or a sequence of them: ints (or 0-dim integer tensors) in ``[0, num_classes)`` and
    class names of ``config.id2label`` (exact, else any case). ``allow_null`` also accepts the null class id
    ``config.num_classes``, ``allow_negative`` negative ids (both unconditional). Bools, floats and other types raise ``TypeError`` (a
    float would otherwise be truncated to a class silently), unknown names and ids out of range ``ValueError``."""
    import difflib
    import numbers

    if isinstance(labels, (str, numbers.Number)) or (torch.is_tensor(labels) and labels.dim() == 0):
        labels = [labels]
    if not isinstance(labels, (Sequence, torch.Tensor)) and not hasattr(labels, "__iter__"):
        raise TypeError(f"`{name}` must be a class id, a class name or a list of them, got {type(labels).__name__}")
    names = {str(v): int(k) for k, v in (config.id2label or {}).items()}
    lower = {k.lower(): v for k, v in names.items()}
    ids = []
    for item in labels:
        if torch.is_tensor(item) or type(item).__module__ == "numpy":
            if getattr(item, "ndim", 0) != 0:
                raise TypeError(f"`{name}` must hold single class ids or names, got an array of shape {tuple(item.shape)}")
            item = item.item()
        if isinstance(item, bool):
            raise TypeError(f"`{name}` must hold class ids (ints) or class names, got the bool {item!r}")
        if isinstance(item, numbers.Integral):
            idx = int(item)
            top = config.num_classes if allow_null else config.num_classes - 1
            if idx > top or (idx < 0 and not allow_negative):
                null = f" or the null class {config.num_classes}" if allow_null else ""
                raise ValueError(
                    f"class id {idx} is out of range: `{name}` must be in [0, {config.num_classes - 1}]{null}"
                )
            ids.append(idx)
        elif isinstance(item, str):
            key = item.strip()
            if key in names or key.lower() in lower:
                ids.append(names.get(key, lower.get(key.lower())))
            else:
                close = difflib.get_close_matches(key, list(names), n=3)
                hint = f"; did you mean {close}?" if close else f"; known classes: {list(names)[:10]}"
                raise ValueError(f"unknown class name {item!r} in `{name}`{hint}")
        elif isinstance(item, numbers.Real):
            raise TypeError(f"`{name}` must hold class ids (ints) or class names, got the float {item!r}")
        else:
            raise TypeError(f"`{name}` must hold class ids (ints) or class names, got {type(item).__name__}")
    if not ids:
        raise ValueError(f"`{name}` is empty")
    return ids


class VideoARPreTrainedModel(HubMixin, PreTrainedModel):
    """Base class: config class, weight init (official: N(0, initializer_range) for Linear and
    Embedding weights, learned positions N(0, 0.02), zero output head), checkpointing flags."""

    config_class = VideoARGeneratorConfig
    config: VideoARGeneratorConfig
    base_model_prefix = "video_ar"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LlamaBlock"]
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            if module is getattr(self, "lm_head", None):
                init.zeros_(module.weight)
            else:
                init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, RMSNorm):
            init.ones_(module.weight)
        elif isinstance(module, VideoARGenerator):
            if module.config.use_fixed_pe:
                init.copy_(module.position_embedding, module._fixed_position_table())
            else:
                init.normal_(module.position_embedding, mean=0.0, std=0.02)


class VideoARGenerator(VideoARPreTrainedModel):
    """Class-conditional or frame-prediction autoregressive generator of visual token ids.

    ``forward(input_ids (B, n), class_labels (B,) | cond_ids (B, Tc), labels (B, n))`` returns a
    :class:`~transformers.modeling_outputs.CausalLMOutput` whose ``logits (B, n, output_vocab_size)``
    are aligned with ``input_ids``: ``logits[:, i]`` predicts token ``i`` from the condition and
    ``input_ids[:, :i]`` (the last input token is never fed). ``loss`` is the mean cross-entropy
    against ``labels`` (same layout; -100 is ignored), usually ``labels = input_ids``.

    :meth:`generate` samples ``(B, max_seq_len)`` token ids with a static KV cache.
    """

    _official_export_kind = "ar"  # from_pretrained also loads official LARP AR exports

    def __init__(self, config: VideoARGeneratorConfig):
        super().__init__(config)
        dim = config.hidden_size
        self.class_embedding = None if config.frame_prediction else nn.Embedding(config.num_classes + 1, dim)
        self.embed_tokens = nn.Embedding(config.vocab_size, dim)
        self.token_dropout = nn.Dropout(config.token_dropout)
        if config.use_fixed_pe:
            self.register_buffer("position_embedding", self._fixed_position_table(), persistent=False)
        else:
            self.position_embedding = nn.Parameter(torch.zeros(1, config.num_positions, dim))
        n = config.num_hidden_layers
        rates = [config.drop_path_rate * i / max(n - 1, 1) for i in range(n)]  # linspace(0, rate, n)
        self.layers = nn.ModuleList(
            [
                LlamaBlock(
                    dim,
                    config.num_attention_heads,
                    config.intermediate_size,
                    num_kv_heads=config.num_key_value_heads,
                    norm_eps=config.rms_norm_eps,
                    attn_dropout=config.attention_dropout,
                    resid_dropout=config.resid_dropout,
                    ffn_dropout=config.ffn_dropout,
                    drop_path=rates[i],
                )
                for i in range(config.num_hidden_layers)
            ]
        )
        self.norm = RMSNorm(dim, eps=config.rms_norm_eps)
        self.lm_head = nn.Linear(dim, config.output_vocab_size, bias=False)
        self.gradient_checkpointing = False
        self.post_init()

    def _fixed_position_table(self) -> torch.Tensor:
        table = sincos_1d(self.config.hidden_size, range(self.config.num_positions))
        return torch.from_numpy(table).float().unsqueeze(0)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding):
        self.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    # ------------------------------------------------------------------ conditioning

    def _check_class_labels(self, class_labels, *, allow_negative: bool, name: str = "class_labels") -> torch.Tensor:
        if self.config.frame_prediction:
            raise ValueError(f"`{name}` is not used by a frame-prediction model; pass `cond_ids`")
        if not torch.is_tensor(class_labels) or class_labels.dim() == 0:  # Python ints / names: checked one by one
            ids = class_label_ids(class_labels, self.config, name=name, allow_null=True, allow_negative=allow_negative)
            class_labels = torch.tensor(ids)
        if class_labels.dtype.is_floating_point or class_labels.dtype.is_complex or class_labels.dtype == torch.bool:
            raise TypeError(f"`{name}` must be an integer tensor of class ids (B,), got dtype {class_labels.dtype}")
        if class_labels.dim() != 1:
            raise ValueError(f"`{name}` must be an integer tensor of shape (B,), got shape {tuple(class_labels.shape)}")
        if not torch.compiler.is_compiling() and class_labels.numel():
            low = -(2**62) if allow_negative else 0
            if bool(((class_labels > self.config.num_classes) | (class_labels < low)).any()):
                allowed = "negative or " if allow_negative else ""
                raise ValueError(
                    f"`{name}` must be class ids in [0, {self.config.num_classes - 1}] or the null class "
                    f"{self.config.null_class_id} ({allowed}unconditional), got {class_labels.tolist()}"
                )
        return class_labels.to(device=self.embed_tokens.weight.device, dtype=torch.long)

    def _check_cond_ids(self, cond_ids) -> torch.Tensor:
        cfg = self.config
        if not cfg.frame_prediction:
            raise ValueError("`cond_ids` is only used by frame-prediction models; pass `class_labels`")
        if not isinstance(cond_ids, torch.Tensor):
            raise TypeError(f"`cond_ids` must be a LongTensor (B, T), got {type(cond_ids)}")
        if cond_ids.dtype.is_floating_point or cond_ids.dtype == torch.bool or cond_ids.dim() != 2:
            raise ValueError(f"`cond_ids` must be an integer tensor (B, T), got {tuple(cond_ids.shape)} {cond_ids.dtype}")
        cond_ids = cond_ids.to(device=self.embed_tokens.weight.device, dtype=torch.long)
        length = cond_ids.shape[1]
        if length == cfg.num_cond_tokens - 1 and cfg.separator_token_id is not None:
            sep = torch.full_like(cond_ids[:, :1], cfg.separator_token_id)
            cond_ids = torch.cat([cond_ids, sep], dim=1)
        elif length != cfg.num_cond_tokens:
            raise ValueError(
                f"`cond_ids` must have {cfg.num_cond_tokens} tokens (condition tokens + separator) or "
                f"{cfg.num_cond_tokens - 1} (the separator {cfg.separator_token_id} is appended), got {length}"
            )
        if not torch.compiler.is_compiling() and bool(((cond_ids < 0) | (cond_ids >= cfg.vocab_size)).any()):
            raise ValueError(f"`cond_ids` must be token ids in [0, {cfg.vocab_size}), got values outside")
        return cond_ids

    def _condition_embeddings(self, class_labels=None, cond_ids=None) -> torch.Tensor:
        """``(B, num_cond_tokens, D)`` prefix embeddings (labels < 0 mean the null class; in training
        each label is replaced by the null class with probability ``class_dropout_prob``)."""
        if self.config.frame_prediction:
            if class_labels is not None:
                raise ValueError("frame-prediction models take `cond_ids`, not `class_labels`")
            if cond_ids is None:
                raise ValueError("a frame-prediction model needs `cond_ids` (B, T) condition tokens")
            return self.embed_tokens(self._check_cond_ids(cond_ids))
        if cond_ids is not None:
            raise ValueError("`cond_ids` is only used by frame-prediction models; pass `class_labels`")
        if class_labels is None:
            raise ValueError("a class-conditional model needs `class_labels` (B,)")
        labels = self._check_class_labels(class_labels, allow_negative=True)
        null = self.config.null_class_id
        labels = torch.where(labels < 0, torch.full_like(labels, null), labels)
        if self.training and self.config.class_dropout_prob > 0:
            drop = torch.rand(labels.shape, device=labels.device) < self.config.class_dropout_prob
            labels = torch.where(drop, torch.full_like(labels, null), labels)
        return self.class_embedding(labels).unsqueeze(1)

    # ------------------------------------------------------------------ full (teacher-forced) pass

    def _full_forward_logits(self, cond_embeds: torch.Tensor, tokens: torch.Tensor, last_only: bool = False):
        """Causal pass over ``[cond_embeds (B, Tc, D) ; embed(tokens (B, m))]``; returns logits for
        positions ``Tc - 1 ..`` i.e. ``(B, m + 1, V)`` (or ``(B, 1, V)`` with ``last_only``)."""
        h = torch.cat([cond_embeds, self.embed_tokens(tokens).to(cond_embeds.dtype)], dim=1)
        length = h.shape[1]
        if length > self.config.num_positions:
            raise ValueError(
                f"sequence of {length} positions exceeds the {self.config.num_positions} learned positions "
                f"(num_cond_tokens {self.config.num_cond_tokens} + max_seq_len {self.config.max_seq_len} - 1)"
            )
        h = self.token_dropout(h)
        h = h + self.position_embedding[:, :length].to(h.dtype)
        for layer in self.layers:
            if self.gradient_checkpointing and self.training:
                h = self._gradient_checkpointing_func(layer.__call__, h)
            else:
                h = layer(h)
        start = length - 1 if last_only else cond_embeds.shape[1] - 1
        return self.lm_head(self.norm(h[:, start:]))

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        class_labels: torch.LongTensor | None = None,
        cond_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> CausalLMOutput | tuple:
        """Teacher-forced logits ``(B, n, V)`` for ``input_ids (B, n)`` (``n <= max_seq_len``; None
        gives ``(B, 1, V)``, the first-token distribution) given ``class_labels (B,)`` or
        ``cond_ids (B, Tc)``; ``loss`` = CE(logits, labels) when ``labels (B, n)`` is given."""
        if kwargs:
            raise TypeError(f"unexpected arguments to VideoARGenerator.forward: {sorted(kwargs)}")
        cond = self._condition_embeddings(class_labels, cond_ids)
        batch = cond.shape[0]
        if input_ids is None:
            tokens = torch.zeros(batch, 0, dtype=torch.long, device=cond.device)
        else:
            if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.dtype.is_floating_point:
                raise ValueError(f"`input_ids` must be an integer tensor (B, n), got {getattr(input_ids, 'shape', input_ids)}")
            if input_ids.shape[0] != batch:
                raise ValueError(f"`input_ids` batch {input_ids.shape[0]} != condition batch {batch}")
            if not 1 <= input_ids.shape[1] <= self.config.max_seq_len:
                raise ValueError(f"`input_ids` length must be in [1, {self.config.max_seq_len}], got {input_ids.shape[1]}")
            tokens = input_ids[:, :-1]
        logits = self._full_forward_logits(cond, tokens)
        loss = None
        if labels is not None:
            if labels.shape != logits.shape[:2]:
                raise ValueError(f"`labels` must have shape {tuple(logits.shape[:2])}, got {tuple(labels.shape)}")
            loss = F.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1).to(logits.device), ignore_index=-100
            )
        if return_dict is False:
            return (loss, logits) if loss is not None else (logits,)
        return CausalLMOutput(loss=loss, logits=logits)

    # ------------------------------------------------------------------ cached decoding

    def _prefill(self, cond_embeds: torch.Tensor, cache: StaticKVCache) -> torch.Tensor:
        """Write the prefix ``(R, Tc, D)`` (positions ``0..Tc-1``) into ``cache``; return the float32
        logits ``(R, V)`` of its last position."""
        length = cond_embeds.shape[1]
        positions = torch.arange(length, device=cond_embeds.device)
        h = cond_embeds + self.position_embedding[:, :length].to(cond_embeds.dtype)
        for i, layer in enumerate(self.layers):
            h = layer(h, cache, i, positions, length)
        return self.lm_head(self.norm(h[:, -1])).float()

    def _decode_step(
        self, tokens: torch.Tensor, position: torch.Tensor, cache: StaticKVCache, kv_length: int, use_mask: bool
    ) -> torch.Tensor:
        """One token per row: ``tokens (R, 1)`` at absolute ``position (1,)``; attends to the first
        ``kv_length`` cache entries (positions ``> position`` masked when ``use_mask``). Returns float32
        logits ``(R, V)``. Fixed shapes for a given ``kv_length``; no host synchronisation."""
        h = self.embed_tokens(tokens) + self.position_embedding[:, position].to(self.embed_tokens.weight.dtype)
        mask = None
        if use_mask:
            mask = (torch.arange(kv_length, device=tokens.device) <= position).view(1, 1, 1, kv_length)
        for i, layer in enumerate(self.layers):
            h = layer(h, cache, i, position, kv_length, mask)
        return self.lm_head(self.norm(h[:, -1])).float()

    @torch.no_grad()
    def generate(
        self,
        class_labels: torch.LongTensor | Sequence[int] | int | None = None,
        cond_ids: torch.LongTensor | None = None,
        *,
        cfg_scale: float = 1.0,
        cfg_interval: int = -1,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        max_new_tokens: int | None = None,
        use_cache: bool = True,
        logits_mask_fn: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
        step_callback: Callable[[int], None] | None = None,
        compile: bool | dict = False,
        cuda_graph: bool = False,
        kv_block_size: int | None = None,
        max_total_tokens: int | None = None,
        forced_prefix: Sequence[int] | torch.LongTensor | None = None,
        stop_every: int = 64,
        matmul_dtype: torch.dtype | None = None,
    ) -> torch.LongTensor:
        """Sample visual token ids ``(B, max_new_tokens)`` (default ``max_seq_len``).

        Variable-length models (``config.token_levels``) sample, per block, a length token and that
        many visual tokens under a :class:`~.length_tokens_video_ar.LengthTokenLogitsMask`, so every
        row parses; rows end independently (filler afterwards) and the loop stops once every row is
        finished (checked every ``stop_every`` tokens). The result is ``(B, S)`` with -1 after each
        row's last token, ``S`` = the longest row; :meth:`parse_generated` gives
        ``(indices, token_counts)``.

        Args:
            class_labels: ``(B,)`` class ids in ``[0, num_classes]`` (``num_classes`` = unconditional),
                class-conditional models only.
            cond_ids: ``(B, num_cond_tokens)`` condition tokens ending with the separator, or
                ``(B, num_cond_tokens - 1)`` (separator appended); frame-prediction models only.
            cfg_scale: classifier-free guidance scale ``u + s (c - u)`` (``>= 1``; 1 = off). The
                conditional and null-class halves run as one batch. Not allowed for frame prediction.
            cfg_interval: guide only up to that many tokens (official indexing, see
                :func:`~.sampling_video_ar.cfg_active`); -1 = always.
            temperature, top_k, top_p: logits / max(temperature, 1e-5), keep the top-k, then the
                Hugging Face nucleus; ``top_k=1`` or ``temperature=0`` is greedy.
            generator: ``torch.Generator`` on the model's device for reproducible sampling.
            use_cache: False re-runs the full sequence every step (reference / benchmark baseline).
            logits_mask_fn: optional ``fn(step, sequences (B, N)) -> bool (B, V) or (V,)`` of allowed ids
                for token ``step`` (``sequences[:, :step]`` holds the tokens so far); applied to the
                guided logits before filtering.
            step_callback: optional ``fn(step)`` called after each token (e.g. a progress bar).
            compile: ``torch.compile`` the decode step (True or a dict of ``torch.compile`` kwargs).
            cuda_graph: capture the decode step in CUDA graphs (one per KV-length bucket).
            kv_block_size: KV-length bucket size (see :func:`~.sampling_video_ar.decode_with_cache`).
            max_total_tokens: variable-length models: at most that many visual tokens per sample (length
                tokens that would overrun it, keeping the smallest level for the blocks still to come,
                are masked); default ``max_seq_len - num_blocks``.
            forced_prefix: variable-length models: counts of the first blocks, a list of ints (all
                samples) or a LongTensor ``(B, k)`` (e.g. the frame-prediction condition (512, 128)).
            stop_every: variable-length models: tokens between checks that every sample is finished.
            matmul_dtype: ``torch.bfloat16`` runs the eager decode step's matrix products on bf16 copies of the
                weights (cached on the model), everything else in the model dtype. A step with few rows is bound
                by reading the weights, so this is close to twice as fast on a CPU with native bf16 (AVX512-BF16 or
                AMX; elsewhere bf16 products are emulated and slower); ``bench/bench_generate.py`` measures it and
                the NLL of the samples. Eager decoding only (not with ``compile`` / ``cuda_graph``).
        """
        cfg = self.config
        if cfg.frame_prediction:
            if cfg_scale != 1.0:
                raise ValueError(f"classifier-free guidance is not defined for frame prediction (cfg_scale={cfg_scale})")
            cond = self._condition_embeddings(class_labels, cond_ids)
        else:
            if cond_ids is not None:
                raise ValueError("`cond_ids` is only used by frame-prediction models; pass `class_labels`")
            if class_labels is None:
                raise ValueError("a class-conditional model needs `class_labels`")
            labels = self._check_class_labels(class_labels, allow_negative=False)
            if labels.numel() == 0:
                raise ValueError("`class_labels` is empty")
            if not cfg_scale >= 1.0:
                raise ValueError(f"`cfg_scale` must be >= 1 (1 disables guidance), got {cfg_scale}")
        if not temperature >= 0:
            raise ValueError(f"`temperature` must be >= 0, got {temperature}")
        if int(top_k) != top_k or top_k < 0:
            raise ValueError(f"`top_k` must be a non-negative int, got {top_k}")
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"`top_p` must be in (0, 1], got {top_p}")
        if int(cfg_interval) != cfg_interval or cfg_interval < -1:
            raise ValueError(f"`cfg_interval` must be an int >= -1, got {cfg_interval}")
        if matmul_dtype is not None and (matmul_dtype not in MATMUL_DTYPES or not use_cache):
            raise ValueError(f"`matmul_dtype` must be None or one of {MATMUL_DTYPES} (with use_cache=True), got {matmul_dtype}")
        num_tokens = cfg.max_seq_len if max_new_tokens is None else int(max_new_tokens)
        if not 1 <= num_tokens <= cfg.max_seq_len:
            raise ValueError(f"`max_new_tokens` must be in [1, {cfg.max_seq_len}], got {max_new_tokens}")
        device = self.embed_tokens.weight.device
        if generator is not None and torch.device(generator.device).type != device.type:
            raise ValueError(f"`generator` is on {generator.device} but the model is on {device}")
        length_mask = None
        if cfg.is_variable_length:
            if max_new_tokens is not None:
                raise ValueError("variable-length models end each sample themselves: cap them with `max_total_tokens`")
            if isinstance(stop_every, bool) or int(stop_every) != stop_every or stop_every < 1:
                raise ValueError(f"`stop_every` must be a positive int, got {stop_every}")
            batch = cond.shape[0] if cfg.frame_prediction else labels.numel()
            length_mask = LengthTokenLogitsMask(
                cfg, batch, device=device, max_total_tokens=max_total_tokens, forced_prefix=forced_prefix
            )
            num_tokens = cfg.num_blocks + length_mask.max_total_tokens
            if logits_mask_fn is not None:
                user_mask = logits_mask_fn

                def logits_mask_fn(step, sequences):
                    return length_mask(step, sequences) & user_mask(step, sequences).to(device=device, dtype=torch.bool)
            else:
                logits_mask_fn = length_mask
        elif max_total_tokens is not None or forced_prefix is not None:
            raise ValueError("`max_total_tokens` / `forced_prefix` need a variable-length model (config.token_levels)")

        was_training = self.training
        self.eval()
        try:
            use_cfg = not cfg.frame_prediction and cfg_scale > 1.0
            if not cfg.frame_prediction:
                if use_cfg:
                    labels = torch.cat([labels, torch.full_like(labels, cfg.null_class_id)])
                cond = self._condition_embeddings(labels)
            cond = cond.to(self.embed_tokens.weight.dtype)
            common = dict(
                use_cfg=use_cfg,
                cfg_scale=float(cfg_scale),
                cfg_interval=int(cfg_interval),
                temperature=float(temperature),
                top_k=int(top_k),
                top_p=float(top_p),
                generator=generator,
                logits_mask_fn=logits_mask_fn,
                step_callback=step_callback,
            )
            if length_mask is not None:
                common.update(stop_fn=lambda: length_mask.done.all(), stop_every=int(stop_every))
            if use_cache:
                sequences = decode_with_cache(
                    self, cond, num_tokens, kv_block_size=kv_block_size, compile=compile, cuda_graph=cuda_graph,
                    matmul_dtype=matmul_dtype, **common
                )
            else:
                sequences = decode_without_cache(self, cond, num_tokens, **common)
        finally:
            self.train(was_training)
        if length_mask is None:
            return sequences
        length_mask.sync(sequences, sequences.shape[1])
        ends = length_mask.sequence_lengths()
        sequences = sequences.masked_fill(torch.arange(sequences.shape[1], device=device) >= ends[:, None], -1)
        return sequences[:, : int(ends.max())]

    def parse_generated(self, sequences: torch.LongTensor) -> tuple[torch.LongTensor, torch.LongTensor]:
        """Variable-length models: ``(indices (B, L_max) padded with -1, token_counts (B, num_blocks))``
        of :meth:`generate`'s output (or of training ``input_ids``)."""
        return parse_length_token_sequence(sequences, self.config)

    def optimizer_param_groups(self, weight_decay: float = 0.05) -> list[dict]:
        """AdamW parameter groups of the official AR trainers: ``weight_decay`` on the weights of
        ``nn.Linear`` layers only; none on embeddings (tokens, classes), positions and RMSNorm scales."""
        linear = {id(m.weight) for m in self.modules() if isinstance(m, nn.Linear)}
        decay = [p for p in self.parameters() if p.requires_grad and id(p) in linear]
        no_decay = [p for p in self.parameters() if p.requires_grad and id(p) not in linear]
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


VideoARGenerator.register_for_auto_class("AutoModel")
