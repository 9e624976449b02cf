"""Convert an official LARP AR generator (``LARP_AR``) to :class:`VideoARGenerator`.

Usage::

    python -m hf_vidtok.models.video_ar.convert_larp_ar_original_to_hf \
        --input hywang66/LARP-L-long-AR --output ./larp-l-long-ar

``--input`` is a folder or Hub repo written by the official ``save_pretrained`` (``config.json`` =
``asdict(ModelArgs)`` + ``model.safetensors``, fallback ``pytorch_model.bin``) or an official
training checkpoint ``.pth`` (``{"model": {"name": "llama-abs-LP", "args": {...}, "sd": {...}}}``).
Both variants (class-conditional, frame prediction) and every official size convert. Every official
key must be consumed and every parameter filled (checked in both directions, else
:class:`~hf_vidtok.models.convert_utils.ConversionError`), the model is loaded strictly and saved with
``save_pretrained`` (safetensors) and its model card. Same API as the other converters (see
``hf_vidtok/models/convert_utils.py``).
"""

from __future__ import annotations

import json
import os
import sys

import torch

from ...modules.llama_block import swiglu_hidden_size
from ..convert_utils import (
    ConversionError,
    check_coverage,
    conversion_parser,
    load_official_export,
    load_strict,
    run_conversion,
)
from .configuration_video_ar import LLAMA_ABS_PRESETS, VideoARGeneratorConfig
from .modeling_video_ar import VideoARGenerator

__all__ = [
    "ConversionError",
    "UCF101_LABELS",
    "OFFICIAL_MODEL_ARGS_DEFAULTS",
    "convert_config",
    "convert_state_dict",
    "load_original_files",
    "load_original_model",
    "main",
    "read_id2label",
]

# Official ModelArgs defaults (models/larp_ar.py).
OFFICIAL_MODEL_ARGS_DEFAULTS = {
    "dim": 4096,
    "n_layer": 32,
    "n_head": 32,
    "n_kv_head": None,
    "multiple_of": 256,
    "ffn_dim_multiplier": None,
    "rope_base": 10000,
    "norm_eps": 1e-5,
    "initializer_range": 0.02,
    "token_dropout_p": 0.1,
    "attn_dropout_p": 0.0,
    "resid_dropout_p": 0.1,
    "ffn_dropout_p": 0.1,
    "drop_path_rate": 0.0,
    "num_classes": 101,
    "class_dropout_prob": 0.1,
    "model_type": "class_cond",
    "vocab_size": 8192,
    "cls_token_num": 1,
    "max_batch_size": 32,
    "max_seq_len": 1024,
    "use_fixed_pe": False,
    "frame_prediction": False,
}

# UCF-101 class ids as the official data loader assigns them: action names parsed from the file
# names ``v_<Action>_gXX_cYY`` and sorted as Python strings (``HandStandPushups`` is spelled so in
# the file names; ``HammerThrow`` < ``Hammering``, ``JumpRope`` < ``JumpingJack``). Names are then
# shown with the official class spelling (``HandstandPushups``).
UCF101_LABELS = [
    "HandstandPushups" if name == "HandStandPushups" else name
    for name in sorted(
    """ApplyEyeMakeup ApplyLipstick Archery BabyCrawling BalanceBeam BandMarching BaseballPitch Basketball
    BasketballDunk BenchPress Biking Billiards BlowDryHair BlowingCandles BodyWeightSquats Bowling
    BoxingPunchingBag BoxingSpeedBag BreastStroke BrushingTeeth CleanAndJerk CliffDiving CricketBowling
    CricketShot CuttingInKitchen Diving Drumming Fencing FieldHockeyPenalty FloorGymnastics FrisbeeCatch
    FrontCrawl GolfSwing Haircut Hammering HammerThrow HandStandPushups HandstandWalking HeadMassage
    HighJump HorseRace HorseRiding HulaHoop IceDancing JavelinThrow JugglingBalls JumpingJack JumpRope
    Kayaking Knitting LongJump Lunges MilitaryParade Mixing MoppingFloor Nunchucks ParallelBars
    PizzaTossing PlayingCello PlayingDaf PlayingDhol PlayingFlute PlayingGuitar PlayingPiano PlayingSitar
    PlayingTabla PlayingViolin PoleVault PommelHorse PullUps Punch PushUps Rafting RockClimbingIndoor
    RopeClimbing Rowing SalsaSpin ShavingBeard Shotput SkateBoarding Skiing Skijet SkyDiving
    SoccerJuggling SoccerPenalty StillRings SumoWrestling Surfing Swing TableTennisShot TaiChi
    TennisSwing ThrowDiscus TrampolineJumping Typing UnevenBars VolleyballSpiking WalkingWithDog
    WallPushups WritingOnBoard YoYo""".split()
    )
]


def convert_config(args: dict, id2label: dict | None = None) -> VideoARGeneratorConfig:
    """Map official ``ModelArgs`` fields (missing ones take the official defaults) to a config."""
    unknown = sorted(set(args) - set(OFFICIAL_MODEL_ARGS_DEFAULTS))
    if unknown:
        raise ConversionError(f"unknown official ModelArgs fields: {unknown}")
    a = {**OFFICIAL_MODEL_ARGS_DEFAULTS, **args}
    if a["model_type"] != "class_cond" and not a["frame_prediction"]:
        raise ConversionError(f"unsupported official model_type {a['model_type']!r} (only 'class_cond')")
    if not a["frame_prediction"] and id2label is None and a["num_classes"] == len(UCF101_LABELS):
        id2label = dict(enumerate(UCF101_LABELS))
    return VideoARGeneratorConfig(
        hidden_size=a["dim"],
        num_hidden_layers=a["n_layer"],
        num_attention_heads=a["n_head"],
        num_key_value_heads=a["n_kv_head"],
        intermediate_size=swiglu_hidden_size(a["dim"], a["multiple_of"], a["ffn_dim_multiplier"]),
        rms_norm_eps=a["norm_eps"],
        initializer_range=a["initializer_range"],
        token_dropout=a["token_dropout_p"],
        attention_dropout=a["attn_dropout_p"],
        resid_dropout=a["resid_dropout_p"],
        ffn_dropout=a["ffn_dropout_p"],
        drop_path_rate=a["drop_path_rate"],
        codebook_size=a["vocab_size"],
        max_seq_len=a["max_seq_len"],
        frame_prediction=a["frame_prediction"],
        num_classes=a["num_classes"],
        class_dropout_prob=a["class_dropout_prob"],
        num_cond_tokens=a["cls_token_num"],
        use_fixed_pe=a["use_fixed_pe"],
        id2label=id2label,
    )


def _key_table(config: VideoARGeneratorConfig) -> dict[str, str]:
    """Official key -> our key (the official fixed sin-cos ``abs_pe`` buffer is handled separately)."""
    table = {"tok_embeddings.weight": "embed_tokens.weight", "norm.weight": "norm.weight", "output.weight": "lm_head.weight"}
    if not config.use_fixed_pe:
        table["abs_pe"] = "position_embedding"
    if not config.frame_prediction:
        table["cls_embedding.embedding_table.weight"] = "class_embedding.weight"
    per_layer = {
        "attention.wqkv.weight": "self_attn.qkv_proj.weight",
        "attention.wo.weight": "self_attn.o_proj.weight",
        "feed_forward.w1.weight": "mlp.gate_proj.weight",
        "feed_forward.w3.weight": "mlp.up_proj.weight",
        "feed_forward.w2.weight": "mlp.down_proj.weight",
        "attention_norm.weight": "input_layernorm.weight",
        "ffn_norm.weight": "post_attention_layernorm.weight",
    }
    for i in range(config.num_hidden_layers):
        for src, dst in per_layer.items():
            table[f"layers.{i}.{src}"] = f"layers.{i}.{dst}"
    return table


def convert_state_dict(official: dict[str, torch.Tensor], model: VideoARGenerator) -> dict[str, torch.Tensor]:
    """Rename an official state dict for ``model``; raises :class:`ConversionError` listing unconsumed
    official keys, unfilled model keys and shape mismatches (the fixed ``abs_pe`` table is checked, not
    loaded)."""
    table = _key_table(model.config)
    official = dict(official)
    errors = []
    if model.config.use_fixed_pe and "abs_pe" in official:
        pe = official.pop("abs_pe").float()
        ref = model._fixed_position_table()
        if pe.shape != ref.shape or not torch.allclose(pe, ref, atol=1e-5):
            errors.append("official fixed `abs_pe` buffer differs from the sin-cos table this config computes")
    converted = {table[k]: v for k, v in official.items() if k in table}
    unconsumed = [k for k in official if k not in table]
    check_coverage(converted, model, unconsumed=unconsumed, errors=errors, what="LARP AR generator")
    return converted


def load_original_files(
    path_or_repo_id: str, revision: str | None = None, **download_kwargs
) -> tuple[dict, dict[str, torch.Tensor]]:
    """Official ``ModelArgs`` fields and state dict of an export folder / Hub repo id (``config.json`` +
    weights) or of an official training checkpoint ``.pth`` (``{"model": {"name", "args", "sd"}}``, read
    with ``weights_only=True``; sizes from the registry name). ``download_kwargs`` (``subfolder``, ``cache_dir``,
    ``token``, ``local_files_only``, ``force_download``) go to :func:`load_official_export`."""
    path = str(path_or_repo_id)
    if not os.path.isfile(path):
        return load_official_export(path, revision=revision, **download_kwargs)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    spec = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(spec, dict) or "sd" not in spec or "name" not in spec:
        raise ConversionError(f"{path}: expected an official checkpoint with model.name / model.args / model.sd")
    name = spec["name"]
    if name not in LLAMA_ABS_PRESETS:
        raise ConversionError(f"{path}: unknown official model name {name!r}; known: {sorted(LLAMA_ABS_PRESETS)}")
    n_layer, n_head, dim = LLAMA_ABS_PRESETS[name]
    args = {k: v for k, v in dict(spec.get("args") or {}).items() if k in OFFICIAL_MODEL_ARGS_DEFAULTS}
    args.update(n_layer=n_layer, n_head=n_head, dim=dim)
    return args, spec["sd"]


def load_original_model(
    path_or_repo_id: str, revision: str | None = None, id2label: dict | None = None, **download_kwargs
) -> VideoARGenerator:
    """A :class:`VideoARGenerator` from an official export or training checkpoint, loaded strictly, in
    eval mode. ``VideoARGenerator.from_pretrained`` calls this for official exports."""
    args, official = load_original_files(path_or_repo_id, revision=revision, **download_kwargs)
    model = VideoARGenerator(convert_config(args, id2label=id2label))
    return load_strict(model, convert_state_dict(official, model))


def read_id2label(path: str | None) -> dict[int, str] | None:
    """``{id: class name}`` from a JSON file (None for no file)."""
    if path is None:
        return None
    with open(path, encoding="utf-8") as f:
        return {int(k): str(v) for k, v in json.load(f).items()}


def main(argv: list[str] | None = None) -> int:
    parser = conversion_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--id2label", default=None, help="JSON file {id: name} (default: UCF-101 names for 101 classes)")

    def load(args):
        return load_original_model(args.input, revision=args.revision, id2label=read_id2label(args.id2label))

    run_conversion(parser, argv, load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
