"""Configuration of the autoregressive video-token generator (LARP ``LARP_AR`` / LlamaGen "llama-abs")."""

from __future__ import annotations

from transformers import PretrainedConfig

from hf_vidtok.modules.llama_block import swiglu_hidden_size  # absolute: copied next to config.json (auto_map)

__all__ = ["VideoARGeneratorConfig", "LLAMA_ABS_PRESETS"]

# Official registry sizes (models/larp_ar.py): name -> (n_layer, n_head, dim).
LLAMA_ABS_PRESETS = {
    "llama-abs-S": (12, 6, 384),
    "llama-abs-B": (12, 12, 768),
    "llama-abs-L": (24, 16, 1024),
    "llama-abs-LP": (30, 20, 1280),
    "llama-abs-XL": (36, 20, 1280),
    "llama-abs-XXL": (48, 24, 1536),
    "llama-abs-XXXL": (48, 40, 2560),
}


class VideoARGeneratorConfig(PretrainedConfig):
    r"""Architecture and vocabulary layout of a :class:`VideoARGenerator` (defaults: the released
    LARP-L-long-AR, llama-abs-LP, 632M parameters, UCF-101 class-conditional, 1024 tokens of an
    8192-entry codebook).

    Vocabulary layout (explicit so that later models can add special tokens, e.g. EVATok length
    tokens):

    * visual tokens are ids ``[0, codebook_size)``;
    * input ids ``[0, vocab_size)`` are embedded (``vocab_size >= codebook_size``; the extra ids are
      special tokens such as the frame-prediction separator ``separator_token_id = codebook_size``);
    * the output head predicts ids ``[0, output_vocab_size)`` (``codebook_size`` for LARP);
    * class-conditional models have ``num_classes`` classes and a null (unconditional / CFG) class
      whose id is ``num_classes`` (:attr:`null_class_id`); ``id2label`` holds the class names.
    * variable-length (EVATok) models set ``token_levels`` and ``num_blocks``: the generated sequence
      is, per temporal block, one LENGTH token then that many visual tokens. ``length_token_ids[i]`` is
      the id stating ``token_levels[i]`` tokens (levels ascending; default: the ids right after the
      codebook and the separator); these ids are in the output vocabulary, and the smallest one also
      serves as the filler fed after a sample has ended (its label is -100 in training). Configs without
      ``token_levels`` are fixed-length (``max_seq_len`` visual tokens, LARP).

    Args:
        hidden_size (`int`): model width (official ``dim``).
        num_hidden_layers (`int`): number of decoder blocks (``n_layer``).
        num_attention_heads (`int`): attention heads (``n_head``).
        num_key_value_heads (`int`, optional): K/V heads for grouped-query attention (``n_kv_head``;
            None = ``num_attention_heads``).
        intermediate_size (`int`, optional): SwiGLU width; None = Llama rule
            ``roundup(int(8 * hidden_size / 3), 256)`` (3584 for 1280).
        rms_norm_eps (`float`): RMSNorm epsilon (1e-5).
        initializer_range (`float`): std of the normal init of Linear / Embedding weights.
        token_dropout, attention_dropout, resid_dropout, ffn_dropout, drop_path_rate (`float`):
            dropout on the input embeddings, attention probabilities, attention output, SwiGLU output
            and the stochastic-depth rate (linearly increasing over the layers).
        codebook_size (`int`): number of visual token ids (tokenizer codebook size, official
            ``vocab_size``).
        max_seq_len (`int`, optional): generated tokens per clip: visual tokens of a fixed-length model
            (default 1024), or the longest sequence (length + visual tokens) of a variable-length one
            (default ``num_blocks * (1 + max(token_levels))``).
        frame_prediction (`bool`): condition on tokens of context frames instead of a class label.
        num_classes (`int`): number of classes (class-conditional models; ignored for frame prediction).
        class_dropout_prob (`float`): probability of replacing the label by the null class in training.
        num_cond_tokens (`int`, optional): length of the conditioning prefix (official ``cls_token_num``):
            1 for class-conditional models, condition tokens + separator for frame prediction
            (default ``max_seq_len + 1``).
        vocab_size (`int`, optional): number of input embeddings; default ``codebook_size`` (+1 for the
            separator of frame-prediction models).
        output_vocab_size (`int`, optional): size of the output head; default ``codebook_size``.
        separator_token_id (`int`, optional): id appended to the condition tokens of frame-prediction
            models; default ``codebook_size``.
        special_token_ids (`dict[str, int]`, optional): further named special ids in
            ``[codebook_size, vocab_size)``.
        use_fixed_pe (`bool`): 1-D sin-cos absolute positions instead of learned ones.
        token_levels (`list[int]`, optional): allowed per-block token counts, ascending (EVATok
            ``(32, 64, 128, 256, 512)``); None = fixed length. A first level of 0 (a tokenizer's repeat level,
            ``EvatokTokenizerConfig.token_levels``) is a block of its length token alone.
        num_blocks (`int`, optional): temporal blocks per clip (one length token each); needed with
            ``token_levels``.
        length_token_ids (`list[int]`, optional): id of the length token of each level; default
            consecutive ids from ``max(codebook_size, separator_token_id + 1)``.
        id2label (`dict[int, str]`, optional): class names; default ``{i: "class_i"}``.

    Example:
        >>> from hf_vidtok.models.video_ar import VideoARGeneratorConfig, VideoARGenerator
        >>> config = VideoARGeneratorConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
        ...     codebook_size=37, max_seq_len=11, num_classes=5)
        >>> model = VideoARGenerator(config)
        >>> tokens = model.generate(class_labels=[0, 3], cfg_scale=1.5)  # (2, 11) LongTensor
    """

    model_type = "video_ar"

    def __init__(
        self,
        hidden_size: int = 1280,
        num_hidden_layers: int = 30,
        num_attention_heads: int = 20,
        num_key_value_heads: int | None = None,
        intermediate_size: int | None = None,
        rms_norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        token_dropout: float = 0.1,
        attention_dropout: float = 0.0,
        resid_dropout: float = 0.1,
        ffn_dropout: float = 0.1,
        drop_path_rate: float = 0.0,
        codebook_size: int = 8192,
        max_seq_len: int | None = None,
        frame_prediction: bool = False,
        num_classes: int = 101,
        class_dropout_prob: float = 0.1,
        num_cond_tokens: int | None = None,
        vocab_size: int | None = None,
        output_vocab_size: int | None = None,
        separator_token_id: int | None = None,
        special_token_ids: dict | None = None,
        use_fixed_pe: bool = False,
        id2label: dict | None = None,
        token_levels: list[int] | None = None,
        num_blocks: int | None = None,
        length_token_ids: list[int] | None = None,
        **kwargs,
    ):
        kwargs.setdefault("tie_word_embeddings", False)
        self.hidden_size = int(hidden_size)
        self.num_hidden_layers = int(num_hidden_layers)
        self.num_attention_heads = int(num_attention_heads)
        self.num_key_value_heads = int(num_attention_heads if num_key_value_heads is None else num_key_value_heads)
        for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads"):
            if getattr(self, name) <= 0:
                raise ValueError(f"`{name}` must be positive, got {getattr(self, name)}")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` "
                f"({self.num_attention_heads})"
            )
        if self.num_attention_heads % self.num_key_value_heads != 0:
            raise ValueError(
                f"`num_attention_heads` ({self.num_attention_heads}) must be divisible by "
                f"`num_key_value_heads` ({self.num_key_value_heads})"
            )
        self.intermediate_size = int(
            swiglu_hidden_size(self.hidden_size) if intermediate_size is None else intermediate_size
        )
        if self.intermediate_size <= 0:
            raise ValueError(f"`intermediate_size` must be positive, got {self.intermediate_size}")
        self.rms_norm_eps = float(rms_norm_eps)
        self.initializer_range = float(initializer_range)
        for name, value in (
            ("token_dropout", token_dropout),
            ("attention_dropout", attention_dropout),
            ("resid_dropout", resid_dropout),
            ("ffn_dropout", ffn_dropout),
            ("drop_path_rate", drop_path_rate),
            ("class_dropout_prob", class_dropout_prob),
        ):
            if not 0.0 <= float(value) < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1), got {value}")
            setattr(self, name, float(value))

        self.codebook_size = int(codebook_size)
        self.token_levels, self.num_blocks = _check_levels(token_levels, num_blocks)
        if max_seq_len is None:  # fixed length: LARP's 1024; variable: the longest length-token sequence
            max_seq_len = 1024 if self.token_levels is None else self.num_blocks * (1 + self.token_levels[-1])
        self.max_seq_len = int(max_seq_len)
        if self.codebook_size <= 0:
            raise ValueError(f"`codebook_size` must be positive, got {self.codebook_size}")
        if self.max_seq_len <= 0:
            raise ValueError(f"`max_seq_len` must be positive, got {self.max_seq_len}")
        self.frame_prediction = bool(frame_prediction)
        self.num_classes = int(num_classes)
        self.use_fixed_pe = bool(use_fixed_pe)
        if self.use_fixed_pe and self.hidden_size % 2:
            raise ValueError(f"`use_fixed_pe` needs an even `hidden_size`, got {self.hidden_size}")

        if self.frame_prediction:
            num_cond_tokens = self.max_seq_len + 1 if num_cond_tokens is None else int(num_cond_tokens)
            separator_token_id = self.codebook_size if separator_token_id is None else int(separator_token_id)
            default_vocab = max(self.codebook_size, separator_token_id + 1)
        else:
            if self.num_classes <= 0:
                raise ValueError(f"`num_classes` must be positive for a class-conditional model, got {num_classes}")
            num_cond_tokens = 1 if num_cond_tokens is None else int(num_cond_tokens)
            if num_cond_tokens != 1:
                raise ValueError(
                    f"class-conditional models use one condition token, got `num_cond_tokens`={num_cond_tokens}"
                )
            if separator_token_id is not None:
                raise ValueError("`separator_token_id` is only used by frame-prediction models")
            default_vocab = self.codebook_size
        special_token_ids = {str(k): int(v) for k, v in (special_token_ids or {}).items()}
        if special_token_ids:
            default_vocab = max(default_vocab, max(special_token_ids.values()) + 1)
        default_output_vocab = self.codebook_size
        if self.token_levels is not None:
            if length_token_ids is None:
                start = self.codebook_size if separator_token_id is None else max(self.codebook_size, separator_token_id + 1)
                length_token_ids = list(range(start, start + len(self.token_levels)))
            length_token_ids = [int(i) for i in length_token_ids]
            if len(length_token_ids) != len(self.token_levels) or len(set(length_token_ids)) != len(length_token_ids):
                raise ValueError(
                    f"`length_token_ids` must hold {len(self.token_levels)} distinct ids (one per level), got {length_token_ids}"
                )
            default_vocab = max(default_vocab, max(length_token_ids) + 1)
            default_output_vocab = max(length_token_ids) + 1
            shortest = self.num_blocks * (1 + self.token_levels[0])
            if self.max_seq_len < shortest:
                raise ValueError(
                    f"`max_seq_len` ({self.max_seq_len}) is below the shortest sequence of {shortest} tokens "
                    f"(num_blocks x (1 + smallest level))"
                )
        elif length_token_ids is not None:
            raise ValueError("`length_token_ids` needs `token_levels` and `num_blocks`")
        self.length_token_ids = length_token_ids
        self.num_cond_tokens = int(num_cond_tokens)
        if self.num_cond_tokens <= 0:
            raise ValueError(f"`num_cond_tokens` must be positive, got {self.num_cond_tokens}")
        self.separator_token_id = separator_token_id
        self.special_token_ids = special_token_ids
        self.vocab_size = int(default_vocab if vocab_size is None else vocab_size)
        self.output_vocab_size = int(default_output_vocab if output_vocab_size is None else output_vocab_size)
        if self.vocab_size < self.codebook_size:
            raise ValueError(f"`vocab_size` ({self.vocab_size}) must be >= `codebook_size` ({self.codebook_size})")
        if not self.codebook_size <= self.output_vocab_size <= self.vocab_size:
            raise ValueError(
                f"`output_vocab_size` ({self.output_vocab_size}) must be in [codebook_size, vocab_size] = "
                f"[{self.codebook_size}, {self.vocab_size}] (every predicted id must be embeddable)"
            )
        named = dict(special_token_ids)
        if separator_token_id is not None:
            named["separator"] = separator_token_id
        for level, idx in zip(self.token_levels or (), self.length_token_ids or ()):
            named[f"length_{level}"] = idx
            if idx >= self.output_vocab_size:
                raise ValueError(
                    f"length token id {idx} (level {level}) must be < `output_vocab_size` ({self.output_vocab_size}): "
                    "the model predicts it"
                )
        if len(set(named.values())) != len(named):
            raise ValueError(f"special token ids must be distinct, got {named}")
        for name, idx in named.items():
            if not self.codebook_size <= idx < self.vocab_size:
                raise ValueError(
                    f"special token {name!r} id {idx} must be in [codebook_size, vocab_size) = "
                    f"[{self.codebook_size}, {self.vocab_size})"
                )

        if id2label is None and not self.frame_prediction:
            id2label = {i: f"class_{i}" for i in range(self.num_classes)}
        if id2label is not None:
            id2label = {int(k): str(v) for k, v in id2label.items()}
            if not self.frame_prediction and sorted(id2label) != list(range(self.num_classes)):
                raise ValueError(
                    f"`id2label` must name exactly the classes 0..{self.num_classes - 1}, got {len(id2label)} entries"
                )
            kwargs["id2label"] = id2label
        super().__init__(**kwargs)

    @property
    def is_variable_length(self) -> bool:
        """True for length-token (EVATok) models (``token_levels`` set)."""
        return self.token_levels is not None

    @property
    def filler_token_id(self) -> int | None:
        """Id fed after a variable-length sample has ended (the smallest level's length id)."""
        return None if self.length_token_ids is None else self.length_token_ids[0]

    @property
    def null_class_id(self) -> int:
        """Id of the unconditional (CFG) class: ``num_classes``."""
        return self.num_classes

    @property
    def num_positions(self) -> int:
        """Length of the absolute position table: ``num_cond_tokens + max_seq_len - 1``."""
        return self.num_cond_tokens + self.max_seq_len - 1

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


def _check_levels(token_levels, num_blocks) -> tuple[list[int] | None, int | None]:
    """Validate ``token_levels`` (strictly ascending non-negative ints with at least one positive: a first 0 is
    the tokenizer's repeat level) and ``num_blocks`` (positive int); both or neither must be given."""
    if token_levels is None and num_blocks is None:
        return None, None
    if token_levels is None or num_blocks is None:
        raise ValueError(
            f"`token_levels` and `num_blocks` go together (variable-length model), got token_levels={token_levels}, "
            f"num_blocks={num_blocks}"
        )
    if isinstance(token_levels, (str, bytes)) or not hasattr(token_levels, "__iter__"):
        raise TypeError(f"`token_levels` must be a list of ints, got {type(token_levels).__name__}")
    levels = list(token_levels)
    if not levels or any(isinstance(v, bool) or int(v) != v or v < 0 for v in levels) or max(levels) <= 0:
        raise ValueError(f"`token_levels` must be a list of non-negative ints with a positive one, got {levels}")
    levels = [int(v) for v in levels]
    if any(b <= a for a, b in zip(levels, levels[1:])):
        raise ValueError(f"`token_levels` must be strictly ascending, got {levels}")
    if isinstance(num_blocks, bool) or int(num_blocks) != num_blocks or num_blocks <= 0:
        raise ValueError(f"`num_blocks` must be a positive int, got {num_blocks}")
    return levels, int(num_blocks)


VideoARGeneratorConfig.register_for_auto_class()
