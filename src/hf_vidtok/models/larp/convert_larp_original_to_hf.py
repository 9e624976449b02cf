"""Convert an official LARP tokenizer export (``PyTorchModelHubMixin``: ``config.json`` +
``model.safetensors``, or ``pytorch_model.bin`` read with ``weights_only=True``) to
:class:`~hf_vidtok.LarpTokenizer`.

Usage::

    python -m hf_vidtok.models.larp.convert_larp_original_to_hf --input hywang66/LARP-L-long-tokenizer \
        --output ./larp-l-long-tokenizer [--push_to_hub user/repo] [--drop_prior]

Every source key must be consumed by the key table (fixed sin-cos buffers are consumed by checking
them against the tables we compute) and every target parameter must be filled, else it fails with
:class:`~hf_vidtok.models.convert_utils.ConversionError`; the model is then loaded strictly. Same API as the
other converters (see ``hf_vidtok/models/convert_utils.py``).
"""

from __future__ import annotations

import logging
import re
import sys

import torch

from ..convert_utils import (
    ConversionError,
    check_coverage,
    conversion_parser,
    load_official_export,
    load_strict,
    run_conversion,
)
from .configuration_larp import LarpTokenizerConfig
from .modeling_larp import LarpTokenizer

__all__ = [
    "ConversionError",
    "OFFICIAL_TOKENIZER_DEFAULTS",
    "KEY_TABLE",
    "convert_config",
    "convert_state_dict",
    "load_original_files",
    "load_original_model",
    "main",
]

logger = logging.getLogger(__name__)

_NONE = (None, "", "none", "no", "null")

# Constructor defaults of the official LARPTokenizer (used when a config.json omits a key).
OFFICIAL_TOKENIZER_DEFAULTS = {
    "bottleneck_token_num": 1024,
    "input_size": 128,
    "frame_num": 16,
    "temporal_patch_size": 4,
    "patch_size": 8,
    "decoder_temporal_patch_size": 4,
    "decoder_patch_size": 8,
    "in_channels": 3,
    "transformer_name": "transformer_encoder_parallel",
    "encoder_name": None,
    "decoder_name": None,
    "latent_pe_scale_factor": 10000,
    "query_init_std": 0.02,
    "encoder_hidden_size": 768,
    "decoder_hidden_size": 768,
    "encoder_num_heads": 12,
    "decoder_num_heads": 12,
    "encoder_depth": 6,
    "decoder_depth": 6,
    "learned_encoder_patch_pe": False,
    "learned_encoder_latent_query_embed": True,
    "learned_decoder_latent_pe": False,
    "learned_decoder_patch_query_embed": False,
    "use_encoder_patch_token_type_embed": False,
    "use_encoder_latent_query_token_type_embed": False,
    "use_decoder_latent_token_type_embed": False,
    "use_decoder_patch_query_token_type_embed": False,
    "encoder_query_gaussian_init": True,
}
_DIRECT_KEYS = [k for k in OFFICIAL_TOKENIZER_DEFAULTS if k not in ("transformer_name", "encoder_name", "decoder_name")]
# Release values of the VQ and prior recipe, used when the nested dicts omit a field.
_VQ_DEFAULTS = {
    "codebook_size": 8192,
    "commitment_loss_weight": 0.25,
    "codebook_loss_weight": 1.0,
    "entropy_loss_weight": 0.0,
    "entropy_loss_temperature": 0.01,
    "l2_normalized": True,
    "stochastic": True,
    "stochastic_temperature": 0.03,
}
_PRIOR_DEFAULTS = {
    "use_mix_ss": True,
    "mix_ss_max_ratio": 0.5,
    "mix_ss_peak_steps_ratio": 0.3,
    "n_rounds": 2,
    "avg_loss_over_rounds": True,
    "no_grad_before_last_round": False,
    "no_dropout": False,
    "latent_ce_temperature": 1.0,
}
# GPTCConfig fields whose semantics we reproduce only at these values.
_GPTC_FIXED = {"detach_x": False, "fully_separated": False}
_GPTC_IGNORED = {"n_ind", "n_classes", "detach_target"}  # injected / only used by GPTC's own loss

# (official key regex, hf_vidtok key template)
KEY_TABLE: list[tuple[str, str]] = [
    (r"x_embedder\.proj\.(weight|bias)", r"patch_embed.proj.\1"),
    (r"(encoder|decoder)\.blocks\.(\d+)\.(norm1|norm2)\.(weight|bias)", r"\1.blocks.\2.\3.\4"),
    (r"(encoder|decoder)\.blocks\.(\d+)\.attn\.qkv\.weight", r"\1.blocks.\2.attn.qkv.weight"),
    (r"(encoder|decoder)\.blocks\.(\d+)\.attn\.proj\.(weight|bias)", r"\1.blocks.\2.attn.proj.\3"),
    (r"(encoder|decoder)\.blocks\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)", r"\1.blocks.\2.mlp.\3.\4"),
    (r"bottleneck\.in_linear\.(weight|bias)", r"pre_quant_proj.\1"),
    (r"bottleneck\.out_linear\.(weight|bias)", r"post_quant_proj.\1"),
    (r"bottleneck\.regularizer\.embedding\.weight", r"quantizer.embedding.weight"),
    (r"final_layer\.norm_final\.(weight|bias)", r"output_layer.norm.\1"),
    (r"final_layer\.linear\.(weight|bias)", r"output_layer.linear.\1"),
    (r"encoder_latent_query_embed", r"encoder_queries"),
    (r"encoder_t_embed", r"encoder_patch_pe_t"),
    (r"encoder_h_embed", r"encoder_patch_pe_h"),
    (r"encode_w_embed", r"encoder_patch_pe_w"),  # [sic] official typo
    (r"decoder_t_embed", r"decoder_patch_query_pe_t"),
    (r"decoder_h_embed", r"decoder_patch_query_pe_h"),
    (r"decoder_w_embed", r"decoder_patch_query_pe_w"),
    (r"decoder_latent_pe", r"decoder_latent_pe"),
    (r"encoder_patch_token_type_embed", r"encoder_patch_token_type_embed"),
    (r"encoder_latent_query_token_type_embed", r"encoder_query_token_type_embed"),
    (r"decoder_latent_token_type_embed", r"decoder_latent_token_type_embed"),
    (r"decoder_patch_query_token_type_embed", r"decoder_patch_query_token_type_embed"),
    (r"decoder_patch_query_embed", r"decoder_patch_query_pe"),
    (r"encoder_patch_pe", r"encoder_patch_pe"),
    (r"prior_model\.pos_emb", r"prior.position_embeddings"),
    (r"prior_model\.input_proj\.(weight|bias)", r"prior.input_proj.\1"),
    (r"prior_model\.blocks\.(\d+)\.ln1\.(weight|bias)", r"prior.blocks.\1.norm1.\2"),
    (r"prior_model\.blocks\.(\d+)\.ln2\.(weight|bias)", r"prior.blocks.\1.norm2.\2"),
    (r"prior_model\.blocks\.(\d+)\.attn\.query\.(weight|bias)", r"prior.blocks.\1.attn.q_proj.\2"),
    (r"prior_model\.blocks\.(\d+)\.attn\.key\.(weight|bias)", r"prior.blocks.\1.attn.k_proj.\2"),
    (r"prior_model\.blocks\.(\d+)\.attn\.value\.(weight|bias)", r"prior.blocks.\1.attn.v_proj.\2"),
    (r"prior_model\.blocks\.(\d+)\.attn\.proj\.(weight|bias)", r"prior.blocks.\1.attn.o_proj.\2"),
    (r"prior_model\.blocks\.(\d+)\.mlp\.0\.(weight|bias)", r"prior.blocks.\1.mlp.fc1.\2"),
    (r"prior_model\.blocks\.(\d+)\.mlp\.2\.(weight|bias)", r"prior.blocks.\1.mlp.fc2.\2"),
    (r"prior_model\.ln_f\.(weight|bias)", r"prior.norm.\1"),
    (r"prior_model\.head\.(weight|bias)", r"prior.head.\1"),
]
_COMPILED = [(re.compile(src + r"$"), dst) for src, dst in KEY_TABLE]


def _none(name) -> bool:
    return name is None or (isinstance(name, str) and name.lower() in _NONE)


def convert_config(official: dict, drop_prior: bool = False) -> LarpTokenizerConfig:
    """Map an official tokenizer ``config.json`` dict to :class:`LarpTokenizerConfig`.

    Raises :class:`ConversionError` for settings this implementation does not reproduce (another transformer
    class, a bottleneck norm, a learnable VQ temperature, ...)."""
    cfg = {**OFFICIAL_TOKENIZER_DEFAULTS, **official}
    for key in ("transformer_name", "encoder_name", "decoder_name"):
        name = cfg.get(key)
        if not _none(name) and name != "transformer_encoder_parallel":
            raise ConversionError(f"unsupported official {key}={name!r} (only 'transformer_encoder_parallel')")
    kwargs = {k: cfg[k] for k in _DIRECT_KEYS}

    bottleneck = cfg.get("bottleneck")
    if not isinstance(bottleneck, dict) or "args" not in bottleneck:
        raise ConversionError("official config has no `bottleneck` dict with `args`")
    if bottleneck.get("name", "bottleneck") != "bottleneck":
        raise ConversionError(f"unsupported official bottleneck {bottleneck.get('name')!r}")
    b_args = bottleneck["args"]
    if not _none(b_args.get("norm", "none")):
        raise ConversionError(f"unsupported official bottleneck norm {b_args.get('norm')!r} (only 'none')")
    reg = b_args.get("regularizer") or {}
    if reg.get("name") != "vq":
        raise ConversionError(f"unsupported official regularizer {reg.get('name')!r} (only 'vq')")
    vq = {**_VQ_DEFAULTS, **(reg.get("args") or {})}
    if vq["stochastic"] and float(vq["stochastic_temperature"]) <= 0:
        raise ConversionError("official VQ with a learnable (negative) stochastic temperature is not supported")
    kwargs.update(
        bottleneck_dim=b_args["bottleneck_dim"],
        codebook_size=vq["codebook_size"],
        commitment_loss_weight=vq["commitment_loss_weight"],
        codebook_loss_weight=vq["codebook_loss_weight"],
        entropy_loss_weight=vq["entropy_loss_weight"],
        entropy_loss_temperature=vq["entropy_loss_temperature"],
        vq_l2_normalized=vq["l2_normalized"],
        vq_stochastic=vq["stochastic"],
        vq_stochastic_temperature=abs(float(vq["stochastic_temperature"])) or 0.03,
    )

    prior = cfg.get("prior_model") or {}
    if drop_prior or _none(prior.get("name")):
        kwargs["prior_name"] = None
        return LarpTokenizerConfig(**kwargs)
    p = {**_PRIOR_DEFAULTS, **prior}
    args = dict(p.get("args") or {})
    for key, value in _GPTC_FIXED.items():
        if key in args and bool(args[key]) != value:
            raise ConversionError(f"unsupported official GPTC setting {key}={args[key]!r}")
    name = p["name"]
    sizes = {
        "prior_num_layers": args.get("n_layer"),
        "prior_num_heads": args.get("n_head"),
        "prior_hidden_size": args.get("n_embd"),
    }
    known = {"n_layer", "n_head", "n_embd", "max_seq_len", "embd_pdrop", "resid_pdrop", "attn_pdrop", "l2_normalized"}
    unknown = set(args) - known - set(_GPTC_FIXED) - _GPTC_IGNORED
    if unknown:
        raise ConversionError(f"unsupported official GPTC args {sorted(unknown)}")
    from .configuration_larp import GPTC_PRESETS

    if name not in GPTC_PRESETS:
        if None in sizes.values():
            raise ConversionError(
                f"official prior {name!r} is not a known GPTC size and its args lack n_layer/n_head/n_embd"
            )
        name = "custom"
    drop = 0.0 if p["no_dropout"] else None
    kwargs.update(
        prior_name=name,
        **{k: v for k, v in sizes.items() if v is not None},
        prior_max_seq_len=args.get("max_seq_len", 1024),
        prior_embd_dropout=drop if drop is not None else args.get("embd_pdrop", 0.1),
        prior_resid_dropout=drop if drop is not None else args.get("resid_pdrop", 0.1),
        prior_attn_dropout=drop if drop is not None else args.get("attn_pdrop", 0.1),
        prior_l2_normalized=args.get("l2_normalized", True),
        prior_n_rounds=p["n_rounds"],
        prior_use_mix_ss=p["use_mix_ss"],
        prior_mix_ss_max_ratio=p["mix_ss_max_ratio"],
        prior_mix_ss_peak_steps_ratio=p["mix_ss_peak_steps_ratio"],
        prior_avg_loss_over_rounds=p["avg_loss_over_rounds"],
        prior_no_grad_before_last_round=p["no_grad_before_last_round"],
        prior_latent_ce_temperature=p["latent_ce_temperature"],
    )
    return LarpTokenizerConfig(**kwargs)


def _map_key(key: str) -> str | None:
    for pattern, template in _COMPILED:
        m = pattern.match(key)
        if m:
            return m.expand(template)
    return None


def convert_state_dict(official_sd: dict[str, torch.Tensor], model: LarpTokenizer) -> dict[str, torch.Tensor]:
    """Rename every official key to the hf_vidtok key, check shapes, and check the fixed sin-cos
    buffers against ours. Raises :class:`ConversionError` listing unconsumed source keys, unfilled
    targets and mismatches. Without prior weights in the checkpoint, the model's freshly initialised
    prior is kept (with a warning), so the result always covers the whole state dict."""
    fixed_buffers = dict(model.named_buffers())
    converted, unconsumed, errors = {}, [], []
    for key, value in official_sd.items():
        target = _map_key(key)
        if target is None:
            unconsumed.append(key)
        elif target in fixed_buffers:
            ours = fixed_buffers[target]
            if value.numel() != ours.numel() or not torch.allclose(
                value.float().reshape(ours.shape), ours.float(), atol=1e-6, rtol=0
            ):
                errors.append(f"{key}: fixed sin-cos table differs from the one this config implies")
        else:
            converted[target] = value
    if model.prior is not None and not any(k.startswith("prior_model.") for k in official_sd):
        logger.warning("the official checkpoint has no prior weights: the prior is freshly initialised")
        converted.update({k: v for k, v in model.state_dict().items() if k.startswith("prior.")})
    check_coverage(converted, model, unconsumed=unconsumed, errors=errors, what="LARP tokenizer")
    return converted


def load_original_files(
    path_or_repo_id: str, revision: str | None = None, **download_kwargs
) -> tuple[dict, dict[str, torch.Tensor]]:
    """``config.json`` and the weights of an official export (local folder or Hub repo id; ``download_kwargs``:
    ``subfolder``, ``cache_dir``, ``token``, ``local_files_only``, ``force_download``)."""
    return load_official_export(path_or_repo_id, revision=revision, **download_kwargs)


def load_original_model(
    path_or_repo_id: str, revision: str | None = None, drop_prior: bool = False, **download_kwargs
) -> LarpTokenizer:
    """A :class:`LarpTokenizer` from an official export, loaded strictly, in eval mode (deterministic VQ).
    ``LarpTokenizer.from_pretrained`` calls this for official exports."""
    official_config, official_sd = load_original_files(path_or_repo_id, revision=revision, **download_kwargs)
    config = convert_config(official_config, drop_prior=drop_prior)
    if drop_prior:
        official_sd = {k: v for k, v in official_sd.items() if not k.startswith("prior_model.")}
    model = LarpTokenizer(config)
    return load_strict(model, convert_state_dict(official_sd, model))


def main(argv: list[str] | None = None) -> int:
    parser = conversion_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--drop_prior", action="store_true", help="do not keep the GPTC prior")
    run_conversion(
        parser, argv, lambda args: load_original_model(args.input, revision=args.revision, drop_prior=args.drop_prior)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
