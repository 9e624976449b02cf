"""Convert an official LARP AR generator (``LARP_AR``) to :class:`VideoARGenerator`.

Usage::

    python -m hf_vidtok.models.video_ar.convert_larp_ar_original_to_hf \
        --input hywang66/LARP-L-long-AR --output ./larp-l-long-ar

``--input`` is a folder or Hub repo written by the official ``save_pretrained`` (``config.json`` =
``asdict(ModelArgs)`` + ``model.safetensors``, fallback ``pytorch_model.bin``) or an official
training checkpoint ``.pth`` (``{"model": {"name": "llama-abs-LP", "args": {...}, "sd": {...}}}``).
Both variants (class-conditional, frame prediction) and every official size convert. Every official
key must be consumed and every parameter filled (checked in both directions), then the model is
saved with ``save_pretrained`` (safetensors).
"""

from __future__ import annotations

import argparse
import json
import os

import torch

from ...modules.llama_block import swiglu_hidden_size
from .configuration_video_ar import LLAMA_ABS_PRESETS, VideoARGeneratorConfig
from .modeling_video_ar import VideoARGenerator

__all__ = [
    "UCF101_LABELS",
    "OFFICIAL_MODEL_ARGS_DEFAULTS",
    "config_from_official",
    "convert_state_dict",
    "convert_larp_ar_checkpoint",
    "main",
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


def config_from_official(args: dict, id2label: dict | None = None) -> VideoARGeneratorConfig:
    """Map official ``ModelArgs`` fields (missing ones take the official defaults) to a config."""
    unknown = sorted(set(args) - set(OFFICIAL_MODEL_ARGS_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown official ModelArgs fields: {unknown}")
    a = {**OFFICIAL_MODEL_ARGS_DEFAULTS, **args}
    if a["model_type"] != "class_cond" and not a["frame_prediction"]:
        raise ValueError(f"unsupported official model_type {a['model_type']!r} (only 'class_cond')")
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
    """Rename an official state dict for ``model``; raises ``KeyError`` listing unconsumed official
    keys or unfilled model keys, ``ValueError`` on shape mismatches."""
    table = _key_table(model.config)
    official = dict(official)
    if model.config.use_fixed_pe and "abs_pe" in official:
        pe = official.pop("abs_pe").float()
        ref = model._fixed_position_table()
        if pe.shape != ref.shape or not torch.allclose(pe, ref, atol=1e-5):
            raise ValueError("official fixed `abs_pe` buffer differs from the sin-cos table this config computes")
    unused = sorted(set(official) - set(table))
    expected = model.state_dict()
    converted = {table[k]: v for k, v in official.items() if k in table}
    missing = sorted(set(expected) - set(converted))
    if unused or missing:
        raise KeyError(f"state-dict coverage failed: official keys not consumed {unused}; model keys not filled {missing}")
    for k, v in converted.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise ValueError(f"shape mismatch for {k}: official {tuple(v.shape)} vs model {tuple(expected[k].shape)}")
    return converted


def _read_official(path: str) -> tuple[dict, dict[str, torch.Tensor]]:
    if os.path.isfile(path):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        spec = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
        if not isinstance(spec, dict) or "sd" not in spec or "name" not in spec:
            raise ValueError(f"{path}: expected an official checkpoint with model.name / model.args / model.sd")
        name = spec["name"]
        if name not in LLAMA_ABS_PRESETS:
            raise ValueError(f"{path}: unknown official model name {name!r}; known: {sorted(LLAMA_ABS_PRESETS)}")
        n_layer, n_head, dim = LLAMA_ABS_PRESETS[name]
        args = {k: v for k, v in dict(spec.get("args") or {}).items() if k in OFFICIAL_MODEL_ARGS_DEFAULTS}
        args.update(n_layer=n_layer, n_head=n_head, dim=dim)
        return args, spec["sd"]
    if not os.path.isdir(path):
        from huggingface_hub import snapshot_download

        path = snapshot_download(path, allow_patterns=["config.json", "model.safetensors", "pytorch_model.bin"])
    with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
        args = json.load(f)
    st = os.path.join(path, "model.safetensors")
    if os.path.exists(st):
        from safetensors.torch import load_file

        sd = load_file(st)
    else:
        sd = torch.load(os.path.join(path, "pytorch_model.bin"), map_location="cpu", weights_only=True)
    return args, sd


def convert_larp_ar_checkpoint(
    path: str, output: str | None = None, id2label: dict | None = None, push_to_hub: str | None = None
) -> VideoARGenerator:
    """Load an official export / checkpoint, convert, optionally ``save_pretrained(output)``."""
    args, official = _read_official(path)
    config = config_from_official(args, id2label=id2label)
    model = VideoARGenerator(config)
    model.load_state_dict(convert_state_dict(official, model), strict=True)
    model.eval()
    if output is not None:
        model.save_pretrained(output)
    if push_to_hub:
        model.push_to_hub(push_to_hub)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, help="official export folder, Hub repo id, or training .pth")
    parser.add_argument("--output", required=True, help="output folder (save_pretrained)")
    parser.add_argument("--id2label", default=None, help="JSON file {id: name} (default: UCF-101 names for 101 classes)")
    parser.add_argument("--push_to_hub", default=None, help="optional Hub repo id to push the converted model to")
    ns = parser.parse_args(argv)
    id2label = None
    if ns.id2label:
        with open(ns.id2label, encoding="utf-8") as f:
            id2label = {int(k): v for k, v in json.load(f).items()}
    model = convert_larp_ar_checkpoint(ns.input, ns.output, id2label=id2label, push_to_hub=ns.push_to_hub)
    n = sum(p.numel() for p in model.parameters())
    print(json.dumps({"output": ns.output, "parameters": n, "frame_prediction": model.config.frame_prediction}))


if __name__ == "__main__":
    main()
