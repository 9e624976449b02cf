"""Converter for official LARP AR exports: key coverage both ways, formats, CLI."""

import json
import shutil

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from transformers import AutoModel

from hf_vidtok.models.video_ar import VideoARGenerator
from hf_vidtok.models.video_ar import convert_larp_ar_original_to_hf as conv


def _fixture(larp_fixture_dir, name="ar"):
    d = larp_fixture_dir / name
    return d, json.loads((d / "config.json").read_text()), load_file(d / "model.safetensors")


def _logits(model, d):
    inp = load_file(d / "inputs.safetensors")
    cond = {"cond_ids": inp["cond_tokens"]} if "cond_tokens" in inp else {"class_labels": inp["class_labels"]}
    with torch.no_grad():
        return model(inp["tokens"], **cond).logits


def test_config_mapping(larp_fixture_dir):
    _, args, _ = _fixture(larp_fixture_dir, "ar_fp")
    c = conv.convert_config(args)
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size) == (64, 2, 4, 256)
    assert c.frame_prediction and c.num_cond_tokens == 65 and c.separator_token_id == 256 and c.vocab_size == 257
    release = conv.convert_config({"dim": 1280, "n_layer": 30, "n_head": 20})
    assert release.intermediate_size == 3584 and release.id2label[0] == "ApplyEyeMakeup"
    assert release.id2label[100] == "YoYo" and len(set(release.id2label.values())) == 101
    with pytest.raises(ValueError, match="unknown official"):
        conv.convert_config({**args, "rope_scaling": 2})


def test_key_coverage_both_directions(larp_fixture_dir):
    _, args, sd = _fixture(larp_fixture_dir)
    model = VideoARGenerator(conv.convert_config(args))
    assert len(conv.convert_state_dict(sd, model)) == len(sd) == len(model.state_dict())
    with pytest.raises(conv.ConversionError, match="not consumed.*extra.weight"):
        conv.convert_state_dict({**sd, "extra.weight": torch.zeros(1)}, model)
    missing = {k: v for k, v in sd.items() if k != "layers.1.ffn_norm.weight"}
    with pytest.raises(conv.ConversionError, match="not filled.*layers.1.post_attention_layernorm.weight"):
        conv.convert_state_dict(missing, model)
    with pytest.raises(ValueError, match="shape mismatch"):
        conv.convert_state_dict({**sd, "norm.weight": torch.ones(3)}, model)


def test_cli_writes_a_loadable_folder(larp_fixture_dir, tmp_path, capsys):
    d, _, _ = _fixture(larp_fixture_dir, "ar_fp")
    assert conv.main(["--input", str(d), "--output", str(tmp_path / "out")]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report == {"output": str(tmp_path / "out"), "parameters": 172_416}
    model = AutoModel.from_pretrained(tmp_path / "out").eval()
    assert type(model) is VideoARGenerator and model.config.frame_prediction
    card = ModelCard.load(tmp_path / "out" / "README.md")
    assert card.data.library_name == "hf_vidtok" and "frame-prediction" in card.data.tags
    torch.testing.assert_close(_logits(model, d), load_file(d / "outputs.safetensors")["logits"], atol=1e-5, rtol=1e-5)


def test_bin_and_training_checkpoint_inputs(larp_fixture_dir, tmp_path, monkeypatch):
    d, args, sd = _fixture(larp_fixture_dir)
    ref = load_file(d / "outputs.safetensors")["logits"]
    # pytorch_model.bin fallback
    (tmp_path / "bin").mkdir()
    shutil.copy(d / "config.json", tmp_path / "bin" / "config.json")
    torch.save(sd, tmp_path / "bin" / "pytorch_model.bin")
    torch.testing.assert_close(_logits(conv.load_original_model(str(tmp_path / "bin")), d), ref)
    # official training checkpoint: {"model": {"name", "args", "sd"}}, sizes from the registry name
    monkeypatch.setitem(conv.LLAMA_ABS_PRESETS, "llama-abs-tiny", (2, 4, 64))
    train_args = {k: v for k, v in args.items() if k not in ("dim", "n_layer", "n_head")}
    ckpt = {"model": {"name": "llama-abs-tiny", "args": train_args, "sd": sd}, "epoch": 3}
    torch.save(ckpt, tmp_path / "epoch-last.pth")
    model = conv.load_original_model(str(tmp_path / "epoch-last.pth"))
    torch.testing.assert_close(_logits(model, d), ref)
    torch.save({"model": {"name": "gpt-unknown", "args": {}, "sd": sd}}, tmp_path / "bad.pth")
    with pytest.raises(conv.ConversionError, match="unknown official model name"):
        conv.load_original_model(str(tmp_path / "bad.pth"))


def test_fixed_sincos_abs_pe_is_checked_not_loaded(larp_fixture_dir):
    _, args, sd = _fixture(larp_fixture_dir)
    model = VideoARGenerator(conv.convert_config({**args, "use_fixed_pe": True}))
    official = {**sd, "abs_pe": model._fixed_position_table()}
    converted = conv.convert_state_dict(official, model)
    assert "position_embedding" not in converted and len(converted) == len(sd) - 1
    with pytest.raises(ValueError, match="abs_pe"):
        conv.convert_state_dict({**sd, "abs_pe": torch.zeros_like(official["abs_pe"])}, model)


def test_both_converters_share_one_api():
    """Same helper names and error type in every converter; the models carry no loader of their own."""
    from hf_vidtok import LarpTokenizer
    from hf_vidtok.models import convert_utils
    from hf_vidtok.models.larp import convert_larp_original_to_hf as larp_conv

    api = {"convert_config", "convert_state_dict", "load_original_files", "load_original_model", "main"}
    for module in (conv, larp_conv):
        assert api <= set(module.__all__) and all(callable(getattr(module, name)) for name in api)
        assert module.ConversionError is convert_utils.ConversionError
    assert issubclass(convert_utils.ConversionError, ValueError)
    assert not hasattr(LarpTokenizer, "from_original") and not hasattr(VideoARGenerator, "load_official")
    with pytest.raises(conv.ConversionError, match="unsupported official bottleneck norm"):
        larp_conv.convert_config({"bottleneck": {"args": {"norm": "layernorm"}}})
