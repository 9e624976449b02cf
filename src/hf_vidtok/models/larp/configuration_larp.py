"""Configuration of the LARP video tokenizer."""

from __future__ import annotations

from transformers import PretrainedConfig
from transformers.utils import logging

__all__ = ["LarpTokenizerConfig", "GPTC_PRESETS", "LEGACY_RUN_SETTINGS"]

logger = logging.get_logger(__name__)

# Official GPTC prior sizes (models/gptc.py): name -> (n_layer, n_head, n_embd).
GPTC_PRESETS = {
    "gptc-XXS": (6, 4, 256),
    "gptc-XS": (6, 6, 384),
    "gptc-S": (12, 6, 384),
    "gptc-M": (12, 8, 512),
    "gptc-B": (12, 12, 768),
    "gptc-L": (24, 16, 1024),
}
_NONE_NAMES = (None, "", "none", "no", "null")
#: Run settings older config.json files carried; they are training arguments now
#: (``training/train_tokenizer.py --<name>``, same names) and are ignored here with a note.
LEGACY_RUN_SETTINGS = (
    "commitment_loss_weight", "codebook_loss_weight", "entropy_loss_weight", "entropy_loss_temperature",
    "prior_n_rounds", "prior_use_mix_ss", "prior_mix_ss_max_ratio", "prior_mix_ss_peak_steps_ratio",
    "prior_avg_loss_over_rounds", "prior_no_grad_before_last_round", "prior_latent_ce_temperature",
)


class LarpTokenizerConfig(PretrainedConfig):
    r"""Architecture of a LARP tokenizer (defaults: the released LARP-L-long, 16x128x128 clips,
    1024 tokens, codebook 8192 x 16, gptc-S prior).

    Argument names follow the official ``LARPTokenizer`` constructor; the official nested
    ``bottleneck`` / ``prior_model`` dicts are flattened into ``bottleneck_dim``, ``codebook_size``,
    ``vq_*`` and ``prior_*`` fields.

    Args:
        bottleneck_token_num (`int`): number N of holistic (1-D) tokens per clip.
        input_size (`int`): square spatial size H = W of the clips.
        frame_num (`int`): number of frames T.
        temporal_patch_size, patch_size (`int`): encoder patch (pt, p, p). ``temporal_patch_size=1``
            selects the per-frame 2-D patch embedding, as the official code.
        decoder_temporal_patch_size, decoder_patch_size (`int`): decoder patch; must equal the encoder
            ones (the official unpatchify uses the encoder grid).
        in_channels (`int`): video channels (also output channels).
        latent_pe_scale_factor (`float`): base of the 1-D sin-cos latent position table.
        query_init_std (`float`): std of the gaussian init of the encoder queries.
        encoder_hidden_size, decoder_hidden_size, encoder_num_heads, decoder_num_heads,
        encoder_depth, decoder_depth (`int`): ViT widths, heads and depths.
        mlp_ratio (`float`), layer_norm_eps (`float`, 1e-5 as the released weights),
        output_layer_norm_eps (`float`, 1e-6): block and output-layer settings.
        learned_encoder_patch_pe (`bool`): learned factorised (t, h, w) patch PEs instead of a fixed 3-D
            sin-cos table. learned_encoder_latent_query_embed (`bool`): learned encoder queries (else a
            fixed 1-D table). learned_decoder_latent_pe, learned_decoder_patch_query_embed (`bool`): same
            for the decoder.
        use_encoder_patch_token_type_embed, use_encoder_latent_query_token_type_embed,
        use_decoder_latent_token_type_embed, use_decoder_patch_query_token_type_embed (`bool`):
            add a learned (1, 1, C) token-type embedding to that group.
        encoder_query_gaussian_init (`bool`): init learned queries from N(0, query_init_std^2) (else sin-cos).
        bottleneck_dim (`int`): code dimension D. codebook_size (`int`): K.
        vq_l2_normalized (`bool`), vq_stochastic (`bool`), vq_stochastic_temperature (`float`): the
            l2-normalised codebook and softmax-sampled selection (T = 0.03).
        vq_eval_deterministic (`bool`, default True): argmax selection in eval mode. The official code
            keeps sampling in eval mode unless told otherwise; set False to reproduce that.
        prior_name (`str` or None): GPTC preset (``gptc-XXS`` ... ``gptc-L``), ``"custom"`` with explicit
            sizes, or None for no prior. prior_num_layers, prior_num_heads, prior_hidden_size
            (`int`, optional): explicit sizes (override the preset). prior_max_seq_len (`int`): length
            of the prior's learned positions (>= bottleneck_token_num).
        prior_embd_dropout, prior_resid_dropout, prior_attn_dropout (`float`): GPTC dropouts (0.1).
        prior_l2_normalized (`bool`): l2-normalise the prior's predictions (cosine logits).

    The config describes the architecture only. Loss weights and the prior's scheduled-sampling recipe
    are training arguments (``training/train_tokenizer.py``; :class:`LarpPriorLossSettings`); the names in
    :data:`LEGACY_RUN_SETTINGS`, stored by older versions, are accepted and ignored with a note.
    ``num_frames`` and ``image_size`` are aliases of ``frame_num`` and ``input_size`` (``attribute_map``);
    the stored names stay the official ones.

    Example:
        >>> from hf_vidtok import LarpTokenizerConfig, LarpTokenizer
        >>> config = LarpTokenizerConfig(frame_num=4, input_size=16, patch_size=8, temporal_patch_size=2,
        ...     encoder_hidden_size=32, decoder_hidden_size=32, encoder_num_heads=2, decoder_num_heads=2,
        ...     encoder_depth=1, decoder_depth=1, bottleneck_token_num=8, codebook_size=37, bottleneck_dim=8,
        ...     prior_name=None)
        >>> model = LarpTokenizer(config)
    """

    model_type = "larp_tokenizer"
    attribute_map = {"num_frames": "frame_num", "image_size": "input_size"}

    def __init__(
        self,
        bottleneck_token_num: int = 1024,
        input_size: int = 128,
        frame_num: int = 16,
        temporal_patch_size: int = 4,
        patch_size: int = 8,
        decoder_temporal_patch_size: int | None = None,
        decoder_patch_size: int | None = None,
        in_channels: int = 3,
        latent_pe_scale_factor: float = 10000.0,
        query_init_std: float = 0.02,
        encoder_hidden_size: int = 768,
        decoder_hidden_size: int = 768,
        encoder_num_heads: int = 12,
        decoder_num_heads: int = 12,
        encoder_depth: int = 12,
        decoder_depth: int = 12,
        mlp_ratio: float = 4.0,
        layer_norm_eps: float = 1e-5,
        output_layer_norm_eps: float = 1e-6,
        learned_encoder_patch_pe: bool = False,
        learned_encoder_latent_query_embed: bool = True,
        learned_decoder_latent_pe: bool = False,
        learned_decoder_patch_query_embed: bool = False,
        use_encoder_patch_token_type_embed: bool = False,
        use_encoder_latent_query_token_type_embed: bool = False,
        use_decoder_latent_token_type_embed: bool = False,
        use_decoder_patch_query_token_type_embed: bool = True,
        encoder_query_gaussian_init: bool = True,
        bottleneck_dim: int = 16,
        codebook_size: int = 8192,
        vq_l2_normalized: bool = True,
        vq_stochastic: bool = True,
        vq_stochastic_temperature: float = 0.03,
        vq_eval_deterministic: bool = True,
        prior_name: str | None = "gptc-S",
        prior_num_layers: int | None = None,
        prior_num_heads: int | None = None,
        prior_hidden_size: int | None = None,
        prior_max_seq_len: int | None = None,
        prior_embd_dropout: float = 0.1,
        prior_resid_dropout: float = 0.1,
        prior_attn_dropout: float = 0.1,
        prior_l2_normalized: bool = True,
        **kwargs,
    ):
        legacy = sorted(k for k in LEGACY_RUN_SETTINGS if k in kwargs)
        for key in legacy:
            kwargs.pop(key)
        if legacy:
            logger.info(
                "LarpTokenizerConfig: ignoring run settings %s (training arguments now, see training/train_tokenizer.py)",
                legacy,
            )
        self.bottleneck_token_num = int(bottleneck_token_num)
        self.input_size = int(input_size)
        self.frame_num = int(frame_num)
        self.temporal_patch_size = int(temporal_patch_size)
        self.patch_size = int(patch_size)
        self.decoder_temporal_patch_size = int(
            temporal_patch_size if decoder_temporal_patch_size is None else decoder_temporal_patch_size
        )
        self.decoder_patch_size = int(patch_size if decoder_patch_size is None else decoder_patch_size)
        self.in_channels = int(in_channels)
        self.latent_pe_scale_factor = float(latent_pe_scale_factor)
        self.query_init_std = float(query_init_std)
        self.encoder_hidden_size = int(encoder_hidden_size)
        self.decoder_hidden_size = int(decoder_hidden_size)
        self.encoder_num_heads = int(encoder_num_heads)
        self.decoder_num_heads = int(decoder_num_heads)
        self.encoder_depth = int(encoder_depth)
        self.decoder_depth = int(decoder_depth)
        self.mlp_ratio = float(mlp_ratio)
        self.layer_norm_eps = float(layer_norm_eps)
        self.output_layer_norm_eps = float(output_layer_norm_eps)
        self.learned_encoder_patch_pe = bool(learned_encoder_patch_pe)
        self.learned_encoder_latent_query_embed = bool(learned_encoder_latent_query_embed)
        self.learned_decoder_latent_pe = bool(learned_decoder_latent_pe)
        self.learned_decoder_patch_query_embed = bool(learned_decoder_patch_query_embed)
        self.use_encoder_patch_token_type_embed = bool(use_encoder_patch_token_type_embed)
        self.use_encoder_latent_query_token_type_embed = bool(use_encoder_latent_query_token_type_embed)
        self.use_decoder_latent_token_type_embed = bool(use_decoder_latent_token_type_embed)
        self.use_decoder_patch_query_token_type_embed = bool(use_decoder_patch_query_token_type_embed)
        self.encoder_query_gaussian_init = bool(encoder_query_gaussian_init)
        self.bottleneck_dim = int(bottleneck_dim)
        self.codebook_size = int(codebook_size)
        self.vq_l2_normalized = bool(vq_l2_normalized)
        self.vq_stochastic = bool(vq_stochastic)
        self.vq_stochastic_temperature = float(vq_stochastic_temperature)
        self.vq_eval_deterministic = bool(vq_eval_deterministic)

        if isinstance(prior_name, str) and prior_name.lower() in _NONE_NAMES:
            prior_name = None
        self.prior_name = prior_name
        if prior_name is not None:
            if prior_name in GPTC_PRESETS:
                preset = GPTC_PRESETS[prior_name]
            elif prior_num_layers is None or prior_num_heads is None or prior_hidden_size is None:
                raise ValueError(
                    f"`prior_name`={prior_name!r} is not a GPTC preset {sorted(GPTC_PRESETS)}; give "
                    "`prior_num_layers`, `prior_num_heads` and `prior_hidden_size` explicitly (prior_name='custom')"
                )
            else:
                preset = (prior_num_layers, prior_num_heads, prior_hidden_size)
            prior_num_layers = preset[0] if prior_num_layers is None else prior_num_layers
            prior_num_heads = preset[1] if prior_num_heads is None else prior_num_heads
            prior_hidden_size = preset[2] if prior_hidden_size is None else prior_hidden_size
            prior_max_seq_len = 1024 if prior_max_seq_len is None else prior_max_seq_len
        self.prior_num_layers = None if prior_num_layers is None else int(prior_num_layers)
        self.prior_num_heads = None if prior_num_heads is None else int(prior_num_heads)
        self.prior_hidden_size = None if prior_hidden_size is None else int(prior_hidden_size)
        self.prior_max_seq_len = None if prior_max_seq_len is None else int(prior_max_seq_len)
        self.prior_embd_dropout = float(prior_embd_dropout)
        self.prior_resid_dropout = float(prior_resid_dropout)
        self.prior_attn_dropout = float(prior_attn_dropout)
        self.prior_l2_normalized = bool(prior_l2_normalized)
        super().__init__(**kwargs)
        self._validate()

    def to_dict(self):
        """As ``PretrainedConfig.to_dict``, with plain ``"module.Class"`` strings in ``auto_map``: transformers'
        ``custom_object_save`` takes any class whose name contains "Tokenizer" for a text tokenizer and
        writes a ``(slow, fast)`` pair, which ``AutoConfig``/``AutoModel`` cannot resolve."""
        output = super().to_dict()
        auto_map = output.get("auto_map")
        if isinstance(auto_map, dict):
            output["auto_map"] = {
                k: (next((c for c in v if c), None) if isinstance(v, (list, tuple)) else v) for k, v in auto_map.items()
            }
        return output

    # ------------------------------------------------------------------ derived sizes
    @property
    def encoder_grid(self) -> tuple[int, int, int]:
        """(t, h, w) patch grid of the encoder."""
        s = self.input_size // self.patch_size
        return (self.frame_num // self.temporal_patch_size, s, s)

    @property
    def num_patches(self) -> int:
        t, h, w = self.encoder_grid
        return t * h * w

    @property
    def num_tokens(self) -> int:
        """Tokens per clip (= ``bottleneck_token_num``)."""
        return self.bottleneck_token_num

    def _validate(self):
        def positive(name):
            if getattr(self, name) <= 0:
                raise ValueError(f"`{name}` must be positive, got {getattr(self, name)}")

        for name in (
            "bottleneck_token_num", "input_size", "frame_num", "temporal_patch_size", "patch_size",
            "in_channels", "encoder_hidden_size", "decoder_hidden_size", "encoder_num_heads",
            "decoder_num_heads", "bottleneck_dim", "codebook_size",
        ):
            positive(name)
        for name in ("encoder_depth", "decoder_depth"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be >= 0, got {getattr(self, name)}")
        if self.frame_num % self.temporal_patch_size:
            raise ValueError(
                f"`frame_num` ({self.frame_num}) must be divisible by `temporal_patch_size` ({self.temporal_patch_size})"
            )
        if self.input_size % self.patch_size:
            raise ValueError(f"`input_size` ({self.input_size}) must be divisible by `patch_size` ({self.patch_size})")
        if (self.decoder_temporal_patch_size, self.decoder_patch_size) != (self.temporal_patch_size, self.patch_size):
            raise ValueError(
                "`decoder_temporal_patch_size`/`decoder_patch_size` must equal `temporal_patch_size`/`patch_size` "
                f"(the official unpatchify uses the encoder grid), got ({self.decoder_temporal_patch_size}, "
                f"{self.decoder_patch_size}) vs ({self.temporal_patch_size}, {self.patch_size})"
            )
        for side in ("encoder", "decoder"):
            hs, nh = getattr(self, f"{side}_hidden_size"), getattr(self, f"{side}_num_heads")
            if hs % nh:
                raise ValueError(f"`{side}_hidden_size` ({hs}) must be divisible by `{side}_num_heads` ({nh})")
        fixed_3d = (not self.learned_encoder_patch_pe, "encoder_hidden_size"), (
            not self.learned_decoder_patch_query_embed,
            "decoder_hidden_size",
        )
        for fixed, name in fixed_3d:
            if getattr(self, name) % 2:
                raise ValueError(f"`{name}` must be even for sin-cos position tables, got {getattr(self, name)}")
            if fixed and getattr(self, name) % 4:
                raise ValueError(
                    f"`{name}` must be divisible by 4 for the fixed 3-D sin-cos patch table, got {getattr(self, name)}"
                )
        if not self.learned_encoder_latent_query_embed and self.encoder_query_gaussian_init:
            raise ValueError(
                "`encoder_query_gaussian_init=True` requires `learned_encoder_latent_query_embed=True`"
            )
        if self.vq_stochastic and self.vq_stochastic_temperature <= 0:
            raise ValueError(f"`vq_stochastic_temperature` must be > 0, got {self.vq_stochastic_temperature}")
        if self.prior_name is not None:
            for name in ("prior_num_layers", "prior_num_heads", "prior_hidden_size"):
                positive(name)
            if self.prior_hidden_size % self.prior_num_heads:
                raise ValueError(
                    f"`prior_hidden_size` ({self.prior_hidden_size}) must be divisible by `prior_num_heads` "
                    f"({self.prior_num_heads})"
                )
            if self.prior_max_seq_len < self.bottleneck_token_num:
                raise ValueError(
                    f"`prior_max_seq_len` ({self.prior_max_seq_len}) must be >= `bottleneck_token_num` "
                    f"({self.bottleneck_token_num})"
                )


LarpTokenizerConfig.register_for_auto_class()
