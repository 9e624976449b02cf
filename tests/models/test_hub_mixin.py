"""hf_vidtok.models.hub_mixin: official LARP exports through from_pretrained (folders, .bin, Hub ids, subfolders),
strict weights, and the error for an export given to the wrong class."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel

from hf_vidtok import LarpTokenizer
from hf_vidtok.models.convert_utils import official_export_kind
from hf_vidtok.models.hub_mixin import WeightsMismatchError, official_export_config
from hf_vidtok.models.larp.convert_larp_original_to_hf import load_original_model as load_original_tokenizer
from hf_vidtok.models.video_ar import VideoARGenerator
from hf_vidtok.models.video_ar.convert_larp_ar_original_to_hf import load_original_model as load_original_ar


def _same_tensors(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and torch.equal(sa[key], sb[key]), key


def test_official_kind_of_config_files(larp_fixture_dir):
    assert official_export_kind(json.loads((larp_fixture_dir / "config.json").read_text())) == "tokenizer"
    assert official_export_kind(json.loads((larp_fixture_dir / "ar" / "config.json").read_text())) == "ar"
    assert official_export_kind({"model_type": "larp_tokenizer", "bottleneck_token_num": 8}) is None
    assert official_export_kind({"model_type": "video_ar", "hidden_size": 8}) is None
    assert official_export_kind({"hidden_size": 8}) is None
    assert official_export_config(larp_fixture_dir)[0] == "tokenizer"
    assert official_export_config(larp_fixture_dir, subfolder="ar_fp")[0] == "ar"
    assert official_export_config(larp_fixture_dir / "nope") is None


def test_tokenizer_official_export_loads_exactly_and_matches_the_official_outputs(larp_fixture_dir):
    model = LarpTokenizer.from_pretrained(larp_fixture_dir)
    assert not model.training
    _same_tensors(model, load_original_tokenizer(str(larp_fixture_dir)))
    video = load_file(larp_fixture_dir / "inputs.safetensors")["video"]
    ref = load_file(larp_fixture_dir / "outputs.safetensors")
    with torch.no_grad():
        enc = model.encode(video)
        recon = model.decode(enc.indices)
    assert torch.equal(enc.indices, ref["indices"])
    torch.testing.assert_close(recon, ref["recon_from_indices"], atol=1e-5, rtol=1e-5)  # float op order may differ
    # converter options and loading settings pass through
    no_prior = LarpTokenizer.from_pretrained(larp_fixture_dir, drop_prior=True, dtype=torch.float64)
    assert no_prior.prior is None and no_prior.patch_embed.proj.weight.dtype == torch.float64
    model, info = LarpTokenizer.from_pretrained(larp_fixture_dir, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    with pytest.raises(TypeError, match="official export"):
        LarpTokenizer.from_pretrained(larp_fixture_dir, no_such_option=1)


def test_bin_export_and_ar_exports(larp_fixture_dir, tmp_path):
    """pytorch_model.bin (read with weights_only=True) gives the same tensors as model.safetensors; both AR
    variants load exactly and sample the official greedy sequences."""
    folder = tmp_path / "bin_export"
    folder.mkdir()
    shutil.copy(larp_fixture_dir / "config.json", folder)
    torch.save(load_file(larp_fixture_dir / "model.safetensors"), folder / "pytorch_model.bin")
    _same_tensors(LarpTokenizer.from_pretrained(folder), load_original_tokenizer(str(larp_fixture_dir)))

    for name in ("ar", "ar_fp"):
        model = VideoARGenerator.from_pretrained(larp_fixture_dir, subfolder=name)
        _same_tensors(model, load_original_ar(str(larp_fixture_dir / name)))
    ar = VideoARGenerator.from_pretrained(larp_fixture_dir / "ar")
    inputs, ref = (load_file(larp_fixture_dir / "ar" / f) for f in ("inputs.safetensors", "outputs.safetensors"))
    tokens = ar.generate(class_labels=inputs["class_labels"], cfg_scale=1.0, top_k=1)
    assert torch.equal(tokens, ref["greedy_nocfg"])


def test_an_export_given_to_the_wrong_class_names_the_right_one(larp_fixture_dir):
    with pytest.raises(ValueError, match="load it with VideoARGenerator.from_pretrained"):
        LarpTokenizer.from_pretrained(larp_fixture_dir / "ar")
    with pytest.raises(ValueError, match="load it with LarpTokenizer.from_pretrained"):
        VideoARGenerator.from_pretrained(larp_fixture_dir)


def test_official_export_by_hub_id(hub, larp_fixture_dir):
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo("official/larp-tiny")
    api.upload_folder(repo_id="official/larp-tiny", folder_path=larp_fixture_dir, allow_patterns=["*.json", "*/*.json",
                      "model.safetensors", "*/model.safetensors"])  # fmt: skip
    _same_tensors(LarpTokenizer.from_pretrained("official/larp-tiny"), load_original_tokenizer(str(larp_fixture_dir)))
    ar = VideoARGenerator.from_pretrained("official/larp-tiny", subfolder="ar")
    _same_tensors(ar, load_original_ar(str(larp_fixture_dir / "ar")))


def _tiny_tokenizer_folder(tmp_path):
    from hubtest_utils import tiny_tokenizer

    model = tiny_tokenizer(seed=3)
    model.save_pretrained(tmp_path / "tok")
    return model, tmp_path / "tok"


def test_weights_that_do_not_fit_raise_naming_the_keys(tmp_path):
    model, folder = _tiny_tokenizer_folder(tmp_path)
    _same_tensors(LarpTokenizer.from_pretrained(folder), model)
    weights = load_file(folder / "model.safetensors")
    dropped = sorted(weights)[0]
    weights.pop(dropped)
    weights["not_a_layer.weight"] = torch.zeros(3)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    for load in (LarpTokenizer.from_pretrained, AutoModel.from_pretrained):
        with pytest.raises(WeightsMismatchError, match="missing") as err:
            load(folder)
        assert dropped in str(err.value) and "not_a_layer.weight" in str(err.value) and "strict=False" in str(err.value)
    loose = LarpTokenizer.from_pretrained(folder, strict=False)  # the explicit opt-in: transformers' behaviour
    key = sorted(model.state_dict())[1]
    assert torch.equal(loose.state_dict()[key], model.state_dict()[key])

    weights = load_file(folder / "model.safetensors")
    weights.pop("not_a_layer.weight")
    weights[dropped] = torch.zeros(5, 5)  # wrong shape
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(WeightsMismatchError, match="another shape") as err:
        LarpTokenizer.from_pretrained(folder)
    assert dropped in str(err.value)
