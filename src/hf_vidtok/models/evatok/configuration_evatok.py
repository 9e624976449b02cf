"""Configuration of the EVATok adaptive-length video tokenizer."""

from __future__ import annotations

from transformers import PretrainedConfig

from ...modules.pooling import max_pyramid_queries, pyramid_grids

__all__ = ["EvatokTokenizerConfig"]


class EvatokTokenizerConfig(PretrainedConfig):
    r"""Architecture of an EVATok tokenizer (Xiong et al., CVPR 2026; defaults: the paper's 145M
    tokenizer on 16x128x128 clips, 4x8x8 patches, 4 temporal blocks, token levels 32..512 per block,
    codebook 16384).

    A clip ``(B, C, T, H, W)`` is cut into ``num_blocks = num_frames / temporal_patch_size`` causal
    temporal blocks (one latent frame each); block ``t`` gets ``k_t`` tokens, ``k_t`` one of
    ``token_levels``. Loss weights (commitment, codebook, entropy 0.02, alignment 0.7, ...) are
    training settings and live in :class:`hf_vidtok.losses.EvatokGeneratorObjective`, not here.

    Choices where the paper is silent (``evatok_impl.md`` §1, §7):

    * **Depth/width**: width 768, 12 heads, MLP ratio 4, ``encoder_layers=7`` + ``decoder_layers=8``
      Q-Former layers (self-attn + cross-attn + MLP, ~9.4M parameters each at width 768) -> 146.1M
      parameters (the paper's 145M). Pre-norm LayerNorm (eps 1e-6), biases on all projections.
    * **Encoder queries**: block ``t``'s ``k_t`` queries are the first ``k_t`` cells of GigaTok's
      pyramid (grids 1x1, 1x1, 1x2, 2x2, 2x4, ...; :mod:`hf_vidtok.modules.pooling`) average-pooled
      from the patch embeddings of block ``t``, then a Linear (no LayerNorm first: it maps a flat patch
      ``c * w`` to ``LN(w)`` whatever its brightness ``c``). Nested: query 0 is the
      block mean, the 32-query set is a prefix of the 64-query set, etc. Their positions are learned
      tables over the index within the block, the block and the level (how many tokens the block
      has), re-added in every layer (DETR).
    * **References**: the static patch embeddings (no LayerNorm, as above); a learned 3-D table (initialised from
      sin-cos) is added to the cross-attention keys only.
    * **Quantiser**: ``code_dim=8`` l2-normalised codes (GigaTok), nearest-code (argmax) selection
      (``vq_stochastic=False``), VQGAN codebook + commitment losses and the MAGVIT-v2 entropy loss
      (temperature ``entropy_loss_temperature``) over valid tokens only.
    * **Decoder queries**: block ``t``'s ``(h * w)`` 3-D queries all start from block ``t``'s first
      quantised token (after ``post_quant_proj``) plus a learned 3-D table (sin-cos init); the table is
      added to the initial queries (the residual stream, as GigaTok's ``ViTDecoder``) and re-added to
      the attention queries/keys in every layer. Without it in the residual stream all patches of a block
      start identical, and the tiny recipe's PSNR stayed flat across levels (16.2-16.4 dB at 2-16
      tokens/block; 17.3-17.8 dB with it). ``decoder_query_init="pyramid_cell"`` (not in the paper) starts
      each patch from the token of its own finest pyramid cell instead, which hands the detail tokens to
      the patches they describe from the first step (small models and short runs learn the routing
      through cross-attention slowly); its references are the quantised tokens with learned index / block / level
      tables on the keys. Linear head (after a LayerNorm) to ``temporal_patch_size * patch_size^2 *
      in_channels`` pixels per patch.
    * **Masks** (App. K): every attention allows ``block(key) <= block(query)``.
    * **Alignment**: ``align_decoder_layer`` defaults to 3 (GigaTok's ``distill_depth``; fewer layers: the last): the output of decoder
      layer 3 (1-based; 0 = the decoder's input queries) is what the V-JEPA 2 alignment projects.
    * **Default assignment** (``default_assignment=None``): for every block, the largest level not
      above the number of patches per block (256 per block at the defaults = the paper's 1024-token
      uniform baseline), else the smallest level.

    Args:
        image_size (`int` or `(int, int)`): frame size H = W, or (H, W).
        num_frames (`int`): frames T per clip.
        in_channels (`int`): video channels (also output channels).
        patch_size, temporal_patch_size (`int`): the linear 3-D patch (pt, p, p); one temporal block per
            latent frame, so ``num_frames`` must be divisible by ``temporal_patch_size``.
        token_levels (`tuple[int]`): allowed tokens per block: distinct powers of two that the pyramid
            reaches on the ``(H/p) x (W/p)`` block map (up to 512 on 16x16).
        default_assignment (`tuple[int]`, optional): per-block counts used when none is given in eval mode.
        hidden_size, num_attention_heads, encoder_layers, decoder_layers (`int`), mlp_ratio (`float`),
        layer_norm_eps (`float`), qkv_bias (`bool`): Q-Former sizes.
        codebook_size (`int`): K (16384; 8192 for the paper's UCF/K600 final tokenizers). code_dim (`int`).
        vq_l2_normalized (`bool`), vq_stochastic (`bool`), vq_stochastic_temperature (`float`): code
            selection; stochastic selection (softmax sampling, LARP-style) only in training mode.
        entropy_loss_temperature (`float`): temperature of the entropy loss's code distribution over cosine
            similarities (0.1; LARP's 0.01 saturates the softmax, the loss then has no gradient and the tiny
            recipe collapsed to one code).
        align_decoder_layer (`int`, optional): decoder layer whose output the alignment loss uses (default
            ``min(3, decoder_layers)``).
        decoder_query_init (`str`): what every decoder query starts from, besides its position:
            ``"first_token"`` (the paper: the block's first token for all of the block's patches) or
            ``"pyramid_cell"`` (the token of the finest pyramid cell of the block's level that contains the
            patch; still a token of the block itself, so block causality holds). See "Decoder queries".
        decoder_carry (`str`): (not in the paper) a path for temporal reuse, like a codec's P-frames: every decoder
            query of block ``t > 0`` also starts from a learned linear map (after a LayerNorm) of the same patch's
            features in block ``t - 1``, and every query gets a learned embedding of its block's level, so a block of
            static content coded with few tokens can take the detail of the earlier blocks at the same place.
            ``"none"`` (the paper), ``"query"`` (block ``t - 1``'s starting query, which carries ``t - 2``'s, and so
            on: all blocks decode in one pass) or ``"output"`` (block ``t - 1``'s decoded features, the output of the
            last decoder layer: the blocks decode one after the other, with the same attention as in one pass).
            Block causality holds either way (only blocks ``<= t`` reach block ``t``). Without it the decoder can
            only find an earlier block's detail through attention, which the small recipes did not learn: still
            clips gained nothing from their earlier blocks. The linear map starts as the identity (zero bias): at
            initialisation a block reuses the earlier block's features as they are, and moving content learns to
            change them.
        token_levels (0): a first level of 0 is the *repeat* level (not in the paper; needs ``decoder_carry="output"``):
            a block with 0 tokens decodes to exactly the previous block's features and frames, as a codec's skip
            block does (block 0 has nothing to repeat and decodes from no tokens). The decoder then cross-attends a
            learned null token besides the tokens, so a query with no tokens to attend to stays defined.
        initializer_range (`float`): std of the truncated-normal init of linear layers and tables.

    Example:
        >>> from hf_vidtok import EvatokTokenizer, EvatokTokenizerConfig
        >>> config = EvatokTokenizerConfig(image_size=16, num_frames=6, patch_size=4, temporal_patch_size=2,
        ...     token_levels=(2, 4, 8), hidden_size=24, num_attention_heads=2, encoder_layers=2,
        ...     decoder_layers=2, codebook_size=37, code_dim=4, align_decoder_layer=1)
        >>> model = EvatokTokenizer(config)
    """

    model_type = "evatok_tokenizer"

    def __init__(
        self,
        image_size: int | tuple[int, int] = 128,
        num_frames: int = 16,
        in_channels: int = 3,
        patch_size: int = 8,
        temporal_patch_size: int = 4,
        token_levels=(32, 64, 128, 256, 512),
        default_assignment=None,
        hidden_size: int = 768,
        num_attention_heads: int = 12,
        encoder_layers: int = 7,
        decoder_layers: int = 8,
        mlp_ratio: float = 4.0,
        layer_norm_eps: float = 1e-6,
        qkv_bias: bool = True,
        codebook_size: int = 16384,
        code_dim: int = 8,
        vq_l2_normalized: bool = True,
        vq_stochastic: bool = False,
        vq_stochastic_temperature: float = 0.03,
        entropy_loss_temperature: float = 0.1,
        align_decoder_layer: int | None = None,
        decoder_query_init: str = "first_token",
        decoder_carry: str = "none",
        initializer_range: float = 0.02,
        **kwargs,
    ):
        if isinstance(image_size, (list, tuple)):
            if len(image_size) != 2:
                raise ValueError(f"`image_size` must be an int or (height, width), got {image_size!r}")
            image_size = [int(image_size[0]), int(image_size[1])]
            if image_size[0] == image_size[1]:
                image_size = image_size[0]
        self.image_size = image_size if isinstance(image_size, list) else int(image_size)
        self.num_frames = int(num_frames)
        self.in_channels = int(in_channels)
        self.patch_size = int(patch_size)
        self.temporal_patch_size = int(temporal_patch_size)
        if isinstance(token_levels, int) or not hasattr(token_levels, "__iter__"):
            raise ValueError(f"`token_levels` must be a sequence of ints, got {token_levels!r}")
        self.token_levels = [int(k) for k in token_levels]
        self.hidden_size = int(hidden_size)
        self.num_attention_heads = int(num_attention_heads)
        self.encoder_layers = int(encoder_layers)
        self.decoder_layers = int(decoder_layers)
        self.mlp_ratio = float(mlp_ratio)
        self.layer_norm_eps = float(layer_norm_eps)
        self.qkv_bias = bool(qkv_bias)
        self.codebook_size = int(codebook_size)
        self.code_dim = int(code_dim)
        self.vq_l2_normalized = bool(vq_l2_normalized)
        self.vq_stochastic = bool(vq_stochastic)
        self.vq_stochastic_temperature = float(vq_stochastic_temperature)
        self.entropy_loss_temperature = float(entropy_loss_temperature)
        self.align_decoder_layer = min(3, self.decoder_layers) if align_decoder_layer is None else int(align_decoder_layer)
        if decoder_query_init not in ("first_token", "pyramid_cell"):
            raise ValueError(f"`decoder_query_init` must be 'first_token' or 'pyramid_cell', got {decoder_query_init!r}")
        self.decoder_query_init = decoder_query_init
        if decoder_carry not in ("none", "query", "output"):
            raise ValueError(f"`decoder_carry` must be 'none', 'query' or 'output', got {decoder_carry!r}")
        self.decoder_carry = decoder_carry
        self.initializer_range = float(initializer_range)
        super().__init__(**kwargs)
        self._validate_sizes()
        if default_assignment is None:
            per_block = self.patch_grid[0] * self.patch_grid[1]
            fitting = [k for k in self.token_levels if k <= per_block]
            default_assignment = [max(fitting) if fitting else min(self.token_levels)] * self.num_blocks
        if isinstance(default_assignment, int) or not hasattr(default_assignment, "__iter__"):
            raise ValueError(f"`default_assignment` must be a sequence of {self.num_blocks} ints, got {default_assignment!r}")
        self.default_assignment = [int(k) for k in default_assignment]
        if len(self.default_assignment) != self.num_blocks or any(k not in self.token_levels for k in self.default_assignment):
            raise ValueError(
                f"`default_assignment` must have {self.num_blocks} entries (one per block), each one of "
                f"`token_levels` {self.token_levels}, got {self.default_assignment}"
            )

    # ------------------------------------------------------------------ derived sizes
    @property
    def image_hw(self) -> tuple[int, int]:
        """(H, W) of the frames."""
        if isinstance(self.image_size, (list, tuple)):
            return int(self.image_size[0]), int(self.image_size[1])
        return self.image_size, self.image_size

    @property
    def num_blocks(self) -> int:
        """Temporal blocks per clip (= latent frames)."""
        return self.num_frames // self.temporal_patch_size

    @property
    def patch_grid(self) -> tuple[int, int]:
        """(h, w) patch map of one block."""
        hh, ww = self.image_hw
        return hh // self.patch_size, ww // self.patch_size

    @property
    def patches_per_block(self) -> int:
        return self.patch_grid[0] * self.patch_grid[1]

    @property
    def max_tokens(self) -> int:
        """Largest tokens per clip (every block at the top level)."""
        return self.num_blocks * max(self.token_levels)

    def _validate_sizes(self):
        for name in (
            "num_frames", "in_channels", "patch_size", "temporal_patch_size", "hidden_size",
            "num_attention_heads", "codebook_size", "code_dim",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"`{name}` must be positive, got {getattr(self, name)}")
        hh, ww = self.image_hw
        if hh <= 0 or ww <= 0:
            raise ValueError(f"`image_size` must be positive, got {self.image_size}")
        for name in ("encoder_layers", "decoder_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}")
        if self.num_frames % self.temporal_patch_size:
            raise ValueError(
                f"`num_frames` ({self.num_frames}) must be divisible by `temporal_patch_size` ({self.temporal_patch_size})"
            )
        if hh % self.patch_size or ww % self.patch_size:
            raise ValueError(f"`image_size` ({hh}x{ww}) must be divisible by `patch_size` ({self.patch_size})")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` ({self.num_attention_heads})"
            )
        if self.hidden_size % 4:
            raise ValueError(f"`hidden_size` must be divisible by 4 (3-D sin-cos table init), got {self.hidden_size}")
        if self.mlp_ratio <= 0:
            raise ValueError(f"`mlp_ratio` must be > 0, got {self.mlp_ratio}")
        levels = self.token_levels
        if not levels or len(set(levels)) != len(levels) or levels != sorted(levels):
            raise ValueError(f"`token_levels` must be distinct and ascending, got {levels}")
        gh, gw = self.patch_grid
        if levels[0] < 0:
            raise ValueError(f"`token_levels` must be >= 0, got {levels}")
        if levels[0] == 0 and (self.decoder_carry != "output" or len(levels) < 2):
            raise ValueError(
                "`token_levels` may start with 0 (the repeat level: the block repeats the previous one) only with "
                f"`decoder_carry='output'` and at least one positive level, got {levels} with {self.decoder_carry!r}"
            )
        for k in levels:
            if k == 0:
                continue
            try:
                pyramid_grids(gh, gw, k)
            except ValueError as err:
                raise ValueError(
                    f"`token_levels` entry {k} cannot be pooled from a {gh}x{gw} block map: powers of two up to "
                    f"{max_pyramid_queries(gh, gw)} are possible ({err})"
                ) from None
        if not 0 <= self.align_decoder_layer <= self.decoder_layers:
            raise ValueError(
                f"`align_decoder_layer` must be in [0, decoder_layers={self.decoder_layers}], got {self.align_decoder_layer}"
            )
        if self.vq_stochastic and self.vq_stochastic_temperature <= 0:
            raise ValueError(f"`vq_stochastic_temperature` must be > 0, got {self.vq_stochastic_temperature}")
        if self.entropy_loss_temperature <= 0:
            raise ValueError(f"`entropy_loss_temperature` must be > 0, got {self.entropy_loss_temperature}")
