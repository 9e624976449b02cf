"""LARP tokenizer: holistic 1-D video tokens via learned queries, an l2-normalised stochastic VQ
and a ViT decoder, plus the GPTC prior used during training (Wang et al., ICLR 2025).

Data layout: videos are ``(B, C, T, H, W)`` floats in ``[0, 1]``; tokens are ``(B, N)`` long.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

# absolute imports: ``register_for_auto_class`` copies this file and its sibling-relative imports next
# to a saved config.json (auto_map), where a parent-relative import could not resolve
from hf_vidtok.models.hub_mixin import HubMixin
from hf_vidtok.modules.attention import QueryTransformer, TransformerBlock
from hf_vidtok.modules.input_checks import check_pixel_values
from hf_vidtok.modules.patch_embed import build_patch_embed
from hf_vidtok.modules.position_embeddings import sincos_1d, sincos_3d, sincos_table
from hf_vidtok.modules.vector_quantizer import VectorQuantizer, sample_categorical

from .configuration_larp import LarpTokenizerConfig
from .modeling_larp_prior import GptcBlock, GptcPrior

__all__ = [
    "LarpPriorLossSettings",
    "LarpPreTrainedModel",
    "LarpTokenizer",
    "LarpEncoderOutput",
    "LarpTokenizerOutput",
    "LarpOutputLayer",
]


@dataclass(frozen=True)
class LarpPriorLossSettings:
    """The prior's latent cross-entropy recipe (larp.md §1.8): run settings, not architecture, so they are
    passed to :meth:`LarpTokenizer.forward` by the trainer (defaults: the release).

    Args:
        n_rounds: scheduled-sampling rounds. use_mix_ss: mix sampled codes into the prior's input.
        mix_ss_max_ratio, mix_ss_peak_steps_ratio: the mix ratio grows linearly to ``max_ratio`` at
            ``peak_steps_ratio * max_steps``. avg_loss_over_rounds: average the CE of all rounds (else
            the last). no_grad_before_last_round: no gradient through earlier rounds.
        latent_ce_temperature: divides the cosine logits.
    """

    n_rounds: int = 2
    use_mix_ss: bool = True
    mix_ss_max_ratio: float = 0.5
    mix_ss_peak_steps_ratio: float = 0.3
    avg_loss_over_rounds: bool = True
    no_grad_before_last_round: bool = False
    latent_ce_temperature: float = 1.0

    def __post_init__(self):
        if self.n_rounds < 1:
            raise ValueError(f"`prior_n_rounds` must be >= 1, got {self.n_rounds}")
        if self.latent_ce_temperature <= 0:
            raise ValueError(f"`prior_latent_ce_temperature` must be > 0, got {self.latent_ce_temperature}")
        if self.mix_ss_peak_steps_ratio <= 0:
            raise ValueError(f"`prior_mix_ss_peak_steps_ratio` must be > 0, got {self.mix_ss_peak_steps_ratio}")


_RELEASE_PRIOR_LOSS = LarpPriorLossSettings()


@dataclass
class LarpEncoderOutput(ModelOutput):
    """Output of :meth:`LarpTokenizer.encode`.

    Args:
        indices (`torch.LongTensor` of shape `(B, N)`): token ids in ``[0, codebook_size)``.
        quantized (`torch.FloatTensor` of shape `(B, N, D)`): selected l2-normalised codes with the
            straight-through gradient (the official ``regularized_z``); input of :meth:`decode_latents`.
        latents (`torch.FloatTensor` of shape `(B, N, C_dec)`): ``post_quant_proj(quantized)``, the decoder input.
        z_projected (`(B, N, D)`): ``pre_quant_proj`` output before normalisation.
        z_normalized (`(B, N, D)`): l2-normalised ``z_projected``.
        vq_loss, commitment_loss, codebook_loss (scalars): ``vq_loss = 0.25 * commitment + codebook`` (the
            release weighting, as the official output; training objectives weight the unweighted parts).
        entropy_loss (scalar or None): per-token minus codebook entropy of the code distribution, when
            ``entropy_loss_temperature`` is given to :meth:`LarpTokenizer.encode`.
    """

    indices: torch.LongTensor | None = None
    quantized: torch.FloatTensor | None = None
    latents: torch.FloatTensor | None = None
    z_projected: torch.FloatTensor | None = None
    z_normalized: torch.FloatTensor | None = None
    vq_loss: torch.FloatTensor | None = None
    commitment_loss: torch.FloatTensor | None = None
    codebook_loss: torch.FloatTensor | None = None
    entropy_loss: torch.FloatTensor | None = None


@dataclass
class LarpTokenizerOutput(ModelOutput):
    """Output of :meth:`LarpTokenizer.forward` (the training forward).

    Args:
        reconstruction (`(B, C, T, H, W)`): decoded video, unclamped.
        indices (`(B, N)` long), quantized (`(B, N, D)`): as in :class:`LarpEncoderOutput`.
        vq_loss, commitment_loss, codebook_loss, entropy_loss (scalars): VQ losses as in :class:`LarpEncoderOutput`.
        prior_loss (scalar or None): the prior's latent cross-entropy (averaged over the scheduled-sampling
            rounds), None without a prior or with ``compute_prior_loss=False``.
        prior_top1_acc, prior_top5_acc (scalars or None): next-token accuracies of the first round.
    """

    reconstruction: torch.FloatTensor | None = None
    indices: torch.LongTensor | None = None
    quantized: torch.FloatTensor | None = None
    vq_loss: torch.FloatTensor | None = None
    commitment_loss: torch.FloatTensor | None = None
    codebook_loss: torch.FloatTensor | None = None
    entropy_loss: torch.FloatTensor | None = None
    prior_loss: torch.FloatTensor | None = None
    prior_top1_acc: torch.FloatTensor | None = None
    prior_top5_acc: torch.FloatTensor | None = None


class LarpOutputLayer(nn.Module):
    """``LayerNorm(eps 1e-6) -> Linear(C, pt * p * p * out_channels)`` (official ``OutputLayer``)."""

    def __init__(self, hidden_size: int, out_features: int, eps: float = 1e-6):
        super().__init__()
        self.norm = nn.LayerNorm(hidden_size, eps=eps)
        self.linear = nn.Linear(hidden_size, out_features)

    def forward(self, x):
        return self.linear(self.norm(x))


class LarpPreTrainedModel(HubMixin, PreTrainedModel):
    config_class = LarpTokenizerConfig
    config: LarpTokenizerConfig
    base_model_prefix = "larp"
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = True
    _no_split_modules = ["TransformerBlock", "GptcBlock"]
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module):
        """The official LARP initialisation (larp.md §1.6)."""
        if isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.Conv2d, nn.Conv3d)):
            # xavier-uniform on the weight viewed as (out, in * prod(kernel)), as for a Linear.
            fan_out, fan_in = module.weight.shape[0], module.weight[0].numel()
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            init.uniform_(module.weight, -bound, bound)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, VectorQuantizer):
            init.kaiming_uniform_(module.embedding.weight)
        elif isinstance(module, GptcPrior):
            init.normal_(module.position_embeddings, std=0.02)
        elif isinstance(module, LarpTokenizer):
            module._init_own_parameters()


class LarpTokenizer(LarpPreTrainedModel):
    """The LARP video tokenizer.

    * :meth:`encode` ``pixel_values (B, C, T, H, W)`` in ``[0, 1]`` -> :class:`LarpEncoderOutput`
      (``indices (B, N)``, ``quantized (B, N, D)``).
    * :meth:`decode` ``indices (B, N)`` -> video ``(B, C, T, H, W)`` (unclamped).
    * :meth:`decode_latents` ``quantized (B, N, D)`` -> video.
    * :meth:`forward` -> :class:`LarpTokenizerOutput` with the reconstruction, VQ losses and the prior's
      latent cross-entropy with scheduled sampling (the training forward; the training script adds the
      pixel / perceptual / GAN terms).

    VQ is argmax in eval mode by default (``config.vq_eval_deterministic``); call
    ``set_vq_eval_deterministic(False)`` to reproduce the official stochastic eval behaviour. Training mode
    samples with ``config.vq_stochastic_temperature``. Sampling takes an optional ``torch.Generator``.
    """

    _official_export_kind = "tokenizer"  # from_pretrained also loads official LARP tokenizer exports

    def __init__(self, config: LarpTokenizerConfig):
        super().__init__(config)
        c = config
        enc_c, dec_c = c.encoder_hidden_size, c.decoder_hidden_size
        t, h, w = c.encoder_grid
        n = c.bottleneck_token_num
        self.patch_embed = build_patch_embed(c.in_channels, enc_c, c.patch_size, c.temporal_patch_size)

        # -- encoder patch positions
        if c.learned_encoder_patch_pe:
            self.encoder_patch_pe_t = nn.Parameter(torch.zeros(1, t, 1, 1, enc_c))
            self.encoder_patch_pe_h = nn.Parameter(torch.zeros(1, 1, h, 1, enc_c))
            self.encoder_patch_pe_w = nn.Parameter(torch.zeros(1, 1, 1, w, enc_c))
        else:
            self.register_buffer("encoder_patch_pe", self._fixed_table("encoder_patch_pe"), persistent=False)
        if c.use_encoder_patch_token_type_embed:
            self.encoder_patch_token_type_embed = nn.Parameter(torch.zeros(1, 1, enc_c))
        # -- encoder queries
        if c.learned_encoder_latent_query_embed:
            self.encoder_queries = nn.Parameter(torch.zeros(n, enc_c))
        else:
            self.register_buffer("encoder_queries", self._fixed_table("encoder_queries"), persistent=False)
        if c.use_encoder_latent_query_token_type_embed:
            self.encoder_query_token_type_embed = nn.Parameter(torch.zeros(1, 1, enc_c))
        # -- decoder latent positions
        if c.learned_decoder_latent_pe:
            self.decoder_latent_pe = nn.Parameter(torch.zeros(1, n, dec_c))
        else:
            self.register_buffer("decoder_latent_pe", self._fixed_table("decoder_latent_pe"), persistent=False)
        if c.use_decoder_latent_token_type_embed:
            self.decoder_latent_token_type_embed = nn.Parameter(torch.zeros(1, 1, dec_c))
        # -- decoder patch queries
        if c.learned_decoder_patch_query_embed:
            self.decoder_patch_query_pe_t = nn.Parameter(torch.zeros(1, t, 1, 1, dec_c))
            self.decoder_patch_query_pe_h = nn.Parameter(torch.zeros(1, 1, h, 1, dec_c))
            self.decoder_patch_query_pe_w = nn.Parameter(torch.zeros(1, 1, 1, w, dec_c))
        else:
            self.register_buffer(
                "decoder_patch_query_pe", self._fixed_table("decoder_patch_query_pe"), persistent=False
            )
        if c.use_decoder_patch_query_token_type_embed:
            self.decoder_patch_query_token_type_embed = nn.Parameter(torch.zeros(1, 1, dec_c))

        self.encoder = QueryTransformer(enc_c, c.encoder_depth, c.encoder_num_heads, c.mlp_ratio, c.layer_norm_eps)
        self.decoder = QueryTransformer(dec_c, c.decoder_depth, c.decoder_num_heads, c.mlp_ratio, c.layer_norm_eps)
        self.pre_quant_proj = nn.Linear(enc_c, c.bottleneck_dim)
        self.quantizer = VectorQuantizer(  # loss weights: the release's, for vq_loss (objectives use the parts)
            c.codebook_size,
            c.bottleneck_dim,
            l2_normalized=c.vq_l2_normalized,
            stochastic=c.vq_stochastic,
            stochastic_temperature=c.vq_stochastic_temperature,
            eval_deterministic=c.vq_eval_deterministic,
        )
        self.post_quant_proj = nn.Linear(c.bottleneck_dim, dec_c)
        self.output_layer = LarpOutputLayer(
            dec_c, c.temporal_patch_size * c.patch_size**2 * c.in_channels, eps=c.output_layer_norm_eps
        )
        if c.prior_name is not None:
            self.prior = GptcPrior(
                input_dim=c.bottleneck_dim,
                hidden_size=c.prior_hidden_size,
                num_layers=c.prior_num_layers,
                num_heads=c.prior_num_heads,
                max_seq_len=c.prior_max_seq_len,
                embd_dropout=c.prior_embd_dropout,
                resid_dropout=c.prior_resid_dropout,
                attn_dropout=c.prior_attn_dropout,
                l2_normalized=c.prior_l2_normalized,
            )
        else:
            self.prior = None
        self.post_init()

    # ------------------------------------------------------------------ init helpers
    def _fixed_table(self, name: str) -> torch.Tensor:
        """The fixed sin-cos tables of the official code (float32, computed in float64)."""
        c = self.config
        t, h, w = c.encoder_grid
        if name == "encoder_patch_pe":
            return sincos_table(sincos_3d(c.encoder_hidden_size, h, t, w))
        if name == "decoder_patch_query_pe":
            return sincos_table(sincos_3d(c.decoder_hidden_size, h, t, w))
        if name == "decoder_latent_pe":
            pos = range(c.bottleneck_token_num)
            return sincos_table(sincos_1d(c.decoder_hidden_size, pos, c.latent_pe_scale_factor))
        if name == "encoder_queries":
            pos = range(c.bottleneck_token_num)
            return sincos_table(sincos_1d(c.encoder_hidden_size, pos, c.latent_pe_scale_factor))[0]
        raise KeyError(name)

    def _init_own_parameters(self):
        c = self.config
        t, h, w = c.encoder_grid
        for name in ("encoder_patch_pe", "decoder_patch_query_pe", "decoder_latent_pe", "encoder_queries"):
            buf = self._buffers.get(name)
            if buf is not None:
                init.copy_(buf, self._fixed_table(name).to(buf.device, buf.dtype))
        if c.learned_encoder_patch_pe:
            for axis, size in (("t", t), ("h", h), ("w", w)):
                p = getattr(self, f"encoder_patch_pe_{axis}")
                init.copy_(p, torch.from_numpy(sincos_1d(c.encoder_hidden_size, range(size))).float().reshape_as(p))
        if c.learned_decoder_patch_query_embed:
            for axis, size in (("t", t), ("h", h), ("w", w)):
                p = getattr(self, f"decoder_patch_query_pe_{axis}")
                init.copy_(p, torch.from_numpy(sincos_1d(c.decoder_hidden_size, range(size))).float().reshape_as(p))
        if c.learned_encoder_latent_query_embed:
            if c.encoder_query_gaussian_init:
                init.normal_(self.encoder_queries, std=c.query_init_std)
            else:
                table = sincos_1d(c.encoder_hidden_size, range(c.bottleneck_token_num))
                init.copy_(self.encoder_queries, torch.from_numpy(table).float())
        if c.learned_decoder_latent_pe:
            init.normal_(self.decoder_latent_pe, std=0.02)
        for name in (
            "encoder_patch_token_type_embed",
            "encoder_query_token_type_embed",
            "decoder_latent_token_type_embed",
            "decoder_patch_query_token_type_embed",
        ):
            if name in self._parameters:
                init.normal_(self._parameters[name], std=0.02)
        # Zero the output layer: an untrained tokenizer outputs 0.
        init.zeros_(self.output_layer.linear.weight)
        init.zeros_(self.output_layer.linear.bias)

    # ------------------------------------------------------------------ embeddings
    def get_encoder_patch_pe(self) -> torch.Tensor:
        """(1, num_patches, C_enc) encoder patch positions (+ token type)."""
        c = self.config
        if c.learned_encoder_patch_pe:
            pe = (self.encoder_patch_pe_t + self.encoder_patch_pe_h + self.encoder_patch_pe_w).reshape(
                1, -1, c.encoder_hidden_size
            )
        else:
            pe = self.encoder_patch_pe
        if c.use_encoder_patch_token_type_embed:
            pe = pe + self.encoder_patch_token_type_embed
        return pe

    def get_encoder_queries(self) -> torch.Tensor:
        """(1, N, C_enc) holistic queries (+ token type)."""
        q = self.encoder_queries.unsqueeze(0)
        if self.config.use_encoder_latent_query_token_type_embed:
            q = q + self.encoder_query_token_type_embed
        return q

    def get_decoder_latent_pe(self) -> torch.Tensor:
        """(1, N, C_dec) positions added to the latent tokens (+ token type)."""
        pe = self.decoder_latent_pe
        if self.config.use_decoder_latent_token_type_embed:
            pe = pe + self.decoder_latent_token_type_embed
        return pe

    def get_decoder_patch_queries(self) -> torch.Tensor:
        """(1, num_patches, C_dec) decoder patch queries (+ token type)."""
        c = self.config
        if c.learned_decoder_patch_query_embed:
            q = (self.decoder_patch_query_pe_t + self.decoder_patch_query_pe_h + self.decoder_patch_query_pe_w).reshape(
                1, -1, c.decoder_hidden_size
            )
        else:
            q = self.decoder_patch_query_pe
        if c.use_decoder_patch_query_token_type_embed:
            q = q + self.decoder_patch_query_token_type_embed
        return q

    # ------------------------------------------------------------------ checks
    def _check_pixel_values(self, pixel_values) -> torch.Tensor:
        c = self.config
        shape = (c.in_channels, c.frame_num, c.input_size, c.input_size)
        return check_pixel_values(pixel_values, shape=shape).to(self.patch_embed.proj.weight.dtype)

    def _check_indices(self, indices) -> torch.Tensor:
        c = self.config
        if not torch.is_tensor(indices):
            raise TypeError(f"`indices` must be a torch.Tensor, got {type(indices).__name__}")
        if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
            raise TypeError(f"`indices` must be an integer tensor, got dtype {indices.dtype}")
        if indices.dim() != 2 or indices.shape[1] != c.bottleneck_token_num:
            raise ValueError(
                f"`indices` must have shape (B, {c.bottleneck_token_num}), got {tuple(indices.shape)}"
            )
        if indices.numel() and not torch.compiler.is_compiling():
            if indices.device.type == "cpu":
                lo, hi = int(indices.min()), int(indices.max())
                if lo < 0 or hi >= c.codebook_size:
                    raise ValueError(
                        f"`indices` must lie in [0, {c.codebook_size}) (codebook size), got values in [{lo}, {hi}]"
                    )
            else:
                # Device-side assertion: no host synchronisation.
                torch._assert_async(((indices >= 0) & (indices < c.codebook_size)).all(), "indices outside the codebook")
        return indices.long()

    def _check_quantized(self, quantized) -> torch.Tensor:
        c = self.config
        if not torch.is_tensor(quantized) or not quantized.is_floating_point():
            raise TypeError("`quantized` must be a floating-point torch.Tensor of shape (B, N, bottleneck_dim)")
        if quantized.dim() != 3 or quantized.shape[1:] != (c.bottleneck_token_num, c.bottleneck_dim):
            raise ValueError(
                f"`quantized` must have shape (B, {c.bottleneck_token_num}, {c.bottleneck_dim}), got {tuple(quantized.shape)}"
            )
        return quantized

    # ------------------------------------------------------------------ public API
    def set_vq_eval_deterministic(self, deterministic: bool = True):
        """Argmax tokens in eval mode (True, the default here) or the official stochastic sampling (False)."""
        self.quantizer.eval_deterministic = bool(deterministic)
        self.config.vq_eval_deterministic = bool(deterministic)

    def embed_patches(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W)`` -> patch tokens ``(B, num_patches, C_enc)`` in (t, h, w) order, before PEs."""
        return self.patch_embed(self._check_pixel_values(pixel_values))

    def encode_hidden(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Encoder output at the N query positions ``(B, N, C_enc)`` (before the bottleneck)."""
        x = self.embed_patches(pixel_values) + self.get_encoder_patch_pe()
        queries = self.get_encoder_queries().expand(x.shape[0], -1, -1).to(x.dtype)
        return self.encoder(x, queries)

    def encode(
        self, pixel_values: torch.Tensor, generator: torch.Generator | None = None,
        entropy_loss_temperature: float | None = None,
    ) -> LarpEncoderOutput:
        """Tokenize ``pixel_values (B, C, T, H, W)`` in [0, 1] (``entropy_loss_temperature``: also return the
        VQ entropy loss at that temperature, a training setting)."""
        hidden = self.encode_hidden(pixel_values)
        z = self.pre_quant_proj(hidden)
        vq = self.quantizer(z, generator=generator, return_logits=entropy_loss_temperature is not None)
        entropy = None
        if entropy_loss_temperature is not None:
            entropy = self.quantizer._entropy_loss(vq.logits, None, temperature=entropy_loss_temperature)
        latents = self.post_quant_proj(vq.quantized.to(self.post_quant_proj.weight.dtype))
        return LarpEncoderOutput(
            indices=vq.indices,
            quantized=vq.quantized,
            latents=latents,
            z_projected=z,
            z_normalized=vq.z,
            vq_loss=vq.loss,
            commitment_loss=vq.commitment_loss,
            codebook_loss=vq.codebook_loss,
            entropy_loss=entropy,
        )

    def decode_hidden_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Decoder on ``latents (B, N, C_dec)`` (after ``post_quant_proj``) -> video ``(B, C, T, H, W)``."""
        b = latents.shape[0]
        z = latents + self.get_decoder_latent_pe().to(latents.dtype)
        queries = self.get_decoder_patch_queries().expand(b, -1, -1).to(latents.dtype)
        x = self.output_layer(self.decoder(z, queries))
        return self.unpatchify(x)

    def decode_latents(self, quantized: torch.Tensor) -> torch.Tensor:
        """Decode codes ``quantized (B, N, bottleneck_dim)`` -> video ``(B, C, T, H, W)``, unclamped."""
        quantized = self._check_quantized(quantized)
        return self.decode_hidden_latents(self.post_quant_proj(quantized.to(self.post_quant_proj.weight.dtype)))

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """Decode token ids ``indices (B, N)`` -> video ``(B, C, T, H, W)``, unclamped (clamp to [0, 1] to view)."""
        indices = self._check_indices(indices)
        codes = self.quantizer.lookup(indices)
        return self.decode_hidden_latents(self.post_quant_proj(codes.to(self.post_quant_proj.weight.dtype)))

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, t*h*w, pt*p*p*C)`` (channel fastest) -> ``(B, C, T, H, W)``."""
        c = self.config
        t, h, w = c.encoder_grid
        pt, p = c.temporal_patch_size, c.patch_size
        b = x.shape[0]
        x = x.reshape(b, t, h, w, pt, p, p, c.in_channels)
        x = x.permute(0, 7, 1, 4, 2, 5, 3, 6)
        return x.reshape(b, c.in_channels, t * pt, h * p, w * p)

    # ------------------------------------------------------------------ prior
    def compute_prior_logits(self, quantized: torch.Tensor, latent_ce_temperature: float = 1.0) -> torch.Tensor:
        """Teacher-forced prior logits ``(B, N-1, K)``: output i scores the code of token i+1 by
        cosine similarity with the (detached, normalised) codebook, divided by the CE temperature."""
        if self.prior is None:
            raise ValueError("this tokenizer has no prior (config.prior_name is None)")
        codebook = self.quantizer.get_codebook().detach()
        prediction = self.prior.predict_next(quantized.to(self.prior.input_proj.weight.dtype))
        return self._prior_logits(prediction, codebook, latent_ce_temperature)

    @staticmethod
    def _prior_logits(prediction: torch.Tensor, codebook: torch.Tensor, temperature: float) -> torch.Tensor:
        logits = F.linear(prediction.float(), codebook)[:, 1:]
        return logits / temperature

    @staticmethod
    def scheduled_sampling_ratio(global_step=None, max_steps=None, settings: LarpPriorLossSettings | None = None):
        """Mix ratio of sampled codes: ``min(step / (max_steps * peak) * max_ratio, max_ratio)``."""
        s = settings or _RELEASE_PRIOR_LOSS
        if not s.use_mix_ss:
            return 1.0
        if global_step is None or max_steps is None:
            raise ValueError(
                "`global_step` and `max_steps` are required for the prior loss with scheduled sampling "
                "(use_mix_ss=True); pass them to forward() or use compute_prior_loss=False"
            )
        ratio = global_step / (max_steps * s.mix_ss_peak_steps_ratio) * s.mix_ss_max_ratio
        if torch.is_tensor(ratio):
            return ratio.clamp(max=s.mix_ss_max_ratio)
        return min(ratio, s.mix_ss_max_ratio)

    def compute_prior_loss(
        self, quantized, indices, global_step=None, max_steps=None, generator=None,
        settings: LarpPriorLossSettings | None = None,
    ):
        """Latent CE of the prior with ``settings.n_rounds`` of scheduled sampling (official ``mix_ss``;
        ``settings`` default: the release recipe).

        Returns ``(loss, top1_acc, top5_acc)``; gradients reach the prior and, through the
        straight-through ``quantized``, the encoder, but not the codebook.
        """
        c = settings or _RELEASE_PRIOR_LOSS
        b, n, d = quantized.shape
        labels = indices[:, 1:]
        ratio = self.scheduled_sampling_ratio(global_step, max_steps, c)
        mask = torch.rand(b, n - 1, 1, device=quantized.device, generator=generator) < ratio
        codebook = self.quantizer.get_codebook().detach()
        dtype = self.prior.input_proj.weight.dtype
        ar_input = quantized
        next_input = ar_input
        rounds = []
        tau = c.latent_ce_temperature
        for i in range(c.n_rounds):
            last = i == c.n_rounds - 1
            if c.no_grad_before_last_round and not last:
                with torch.no_grad():
                    logits = self._prior_logits(self.prior.predict_next(next_input.detach().to(dtype)), codebook, tau)
            else:
                logits = self._prior_logits(self.prior.predict_next(next_input.to(dtype)), codebook, tau)
                rounds.append(logits)
            if not last:
                with torch.no_grad():
                    probs = torch.softmax(logits.detach().float(), dim=-1)
                    sampled = F.embedding(sample_categorical(probs, generator=generator), codebook)
                mixed = torch.where(mask, sampled.to(ar_input.dtype), ar_input[:, 1:])
                next_input = torch.cat([ar_input[:, :1], mixed], dim=1)
        if not c.avg_loss_over_rounds:
            rounds = rounds[-1:]
        stacked = torch.stack(rounds, dim=0)
        target = labels.unsqueeze(0).expand(stacked.shape[0], -1, -1)
        loss = F.cross_entropy(stacked.reshape(-1, stacked.shape[-1]), target.reshape(-1))
        first = rounds[0].detach()
        top5 = first.topk(min(5, first.shape[-1]), dim=-1).indices
        top1_acc = (top5[..., 0] == labels).float().mean()
        top5_acc = (top5 == labels.unsqueeze(-1)).any(-1).float().mean()
        return loss, top1_acc, top5_acc

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        pixel_values: torch.Tensor,
        global_step=None,
        max_steps=None,
        generator: torch.Generator | None = None,
        compute_prior_loss: bool | None = None,
        return_dict: bool = True,
        prior_loss_settings: LarpPriorLossSettings | None = None,
        entropy_loss_temperature: float | None = None,
    ) -> LarpTokenizerOutput | tuple:
        """Training forward: encode -> decode, VQ losses and (with a prior) the latent CE.

        Args:
            pixel_values: ``(B, C, T, H, W)`` in [0, 1].
            global_step, max_steps: drive the scheduled-sampling ratio (python numbers or tensors).
            generator: for the VQ and scheduled-sampling draws.
            compute_prior_loss: default True when the model has a prior.
            prior_loss_settings: the prior's CE recipe (default: the release's).
            entropy_loss_temperature: also compute the VQ entropy loss (``entropy_loss``) at this temperature.
        """
        enc = self.encode(pixel_values, generator=generator, entropy_loss_temperature=entropy_loss_temperature)
        reconstruction = self.decode_hidden_latents(enc.latents)
        if compute_prior_loss is None:
            compute_prior_loss = self.prior is not None
        prior_loss = top1 = top5 = None
        if compute_prior_loss:
            if self.prior is None:
                raise ValueError("`compute_prior_loss=True` but this tokenizer has no prior")
            prior_loss, top1, top5 = self.compute_prior_loss(
                enc.quantized, enc.indices, global_step=global_step, max_steps=max_steps, generator=generator,
                settings=prior_loss_settings,
            )
        out = LarpTokenizerOutput(
            reconstruction=reconstruction,
            indices=enc.indices,
            quantized=enc.quantized,
            vq_loss=enc.vq_loss,
            commitment_loss=enc.commitment_loss,
            codebook_loss=enc.codebook_loss,
            entropy_loss=enc.entropy_loss,
            prior_loss=prior_loss,
            prior_top1_acc=top1,
            prior_top5_acc=top5,
        )
        return out if return_dict else out.to_tuple()

    # ------------------------------------------------------------------ training
    def optimizer_param_groups(
        self,
        learning_rate: float,
        *,
        prior_lr_mult: float = 1.0,
        codebook_lr_mult: float = 1.0,
        weight_decay: float = 0.0,
    ) -> list[dict]:
        """Optimizer groups ``[main, prior, codebook]`` (empty ones dropped, frozen parameters left out) with
        lrs ``learning_rate * {1, prior_lr_mult, codebook_lr_mult}``; the codebook (the official
        ``emb_lr_mult`` group) gets no weight decay. Each group has a ``name``.

        Why ``prior_lr_mult`` defaults to 1.0: the official trainer builds a prior group at 50x the lr but
        its per-step schedule then overwrites every group's lr with the base lr (larp.md §4, §9.2), so the
        released model's prior was effectively trained at 1x. Other values really apply here because the
        schedulers of :mod:`hf_vidtok.training.optimization` scale each group's own base lr.
        """
        if learning_rate <= 0:
            raise ValueError(f"`learning_rate` must be > 0, got {learning_rate}")
        for name, value in (("prior_lr_mult", prior_lr_mult), ("codebook_lr_mult", codebook_lr_mult)):
            if value <= 0:
                raise ValueError(f"`{name}` must be > 0, got {value}")
        codebook_re = re.compile(r"quantizer\.embedding\.weight$")
        main, prior, codebook = [], [], []
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            if name.split(".")[0] == "prior":
                prior.append(param)
            elif codebook_re.search(name):
                codebook.append(param)
            else:
                main.append(param)
        groups = [
            {"params": main, "lr": learning_rate, "name": "main", "weight_decay": weight_decay},
            {"params": prior, "lr": learning_rate * prior_lr_mult, "name": "prior", "weight_decay": weight_decay},
            {"params": codebook, "lr": learning_rate * codebook_lr_mult, "name": "codebook", "weight_decay": 0.0},
        ]
        return [g for g in groups if g["params"]]


LarpTokenizer.register_for_auto_class("AutoModel")
