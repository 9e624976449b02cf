"""ClassToVideoPipeline / FramePredictionPipeline end to end with tiny models."""

import av
import numpy as np
import pytest
import torch

from hf_vidtok import LarpTokenizer, LarpTokenizerConfig
from hf_vidtok.models.video_ar import VideoARGenerator, VideoARGeneratorConfig
from hf_vidtok.data import repeat_to_num_frames
from hf_vidtok.pipelines import (
    ClassToVideoPipeline,
    FramePredictionPipeline,
    VideoPipelineOutput,
    export_to_video,
)

LABELS = {0: "ApplyEyeMakeup", 1: "Archery", 2: "BabyCrawling"}


def get_dummy_components(frame_prediction=False, seed=0):
    torch.manual_seed(seed)
    tok = LarpTokenizer(
        LarpTokenizerConfig(
            frame_num=4, input_size=16, patch_size=8, temporal_patch_size=2, encoder_hidden_size=32,
            decoder_hidden_size=32, encoder_num_heads=2, decoder_num_heads=2, encoder_depth=1, decoder_depth=1,
            bottleneck_token_num=9, codebook_size=29, bottleneck_dim=4, prior_name=None,
        )
    ).eval()
    with torch.no_grad():
        tok.output_layer.linear.weight.normal_(std=0.5)  # non-zero output
        tok.output_layer.linear.bias.fill_(0.5)
    kw = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, codebook_size=29, max_seq_len=9)
    if frame_prediction:
        cfg = VideoARGeneratorConfig(frame_prediction=True, **kw)
    else:
        cfg = VideoARGeneratorConfig(num_classes=3, id2label=LABELS, **kw)
    gen = VideoARGenerator(cfg).eval()
    with torch.no_grad():
        gen.lm_head.weight.normal_(std=0.5)  # the official init zeroes the head
    return {"tokenizer": tok, "generator": gen}


def get_dummy_inputs(device="cpu", seed=0):
    return dict(
        class_labels=[0, "archery"], guidance_scale=1.5, generator=torch.Generator(device).manual_seed(seed),
        output_type="np",
    )


def test_class_to_video_shapes_range_and_reproducibility():
    pipe = ClassToVideoPipeline(**get_dummy_components())
    pipe.set_progress_bar_config(disable=True)
    out = pipe(**get_dummy_inputs())
    assert isinstance(out, VideoPipelineOutput)
    frames = out.frames
    assert frames.shape == (2, 4, 16, 16, 3) and frames.dtype == np.float32
    assert frames.min() >= 0.0 and frames.max() <= 1.0 and frames.std() > 0
    assert out.num_tokens.tolist() == [9, 9] and out.token_counts is None  # fixed length: LARP's 9 tokens
    again = pipe(**get_dummy_inputs()).frames
    np.testing.assert_array_equal(frames, again)
    other = pipe(**get_dummy_inputs(seed=1)).frames
    assert not np.array_equal(frames, other)
    pt = pipe(**{**get_dummy_inputs(), "output_type": "pt"}).frames
    assert pt.shape == (2, 4, 3, 16, 16)
    np.testing.assert_allclose(pt.permute(0, 1, 3, 4, 2).numpy(), frames)
    pil = pipe(**{**get_dummy_inputs(), "output_type": "pil"}).frames
    assert len(pil) == 2 and len(pil[0]) == 4 and pil[0][0].size == (16, 16)
    (tup,) = pipe(**{**get_dummy_inputs(), "return_dict": False})
    np.testing.assert_array_equal(tup, frames)


def test_class_to_video_matches_generator_then_decode():
    comps = get_dummy_components()
    pipe = ClassToVideoPipeline(**comps)
    pipe.set_progress_bar_config(disable=True)
    frames = pipe(["BabyCrawling"], num_videos_per_label=2, guidance_scale=1.0, top_k=1, output_type="pt").frames
    tokens = comps["generator"].generate(class_labels=torch.tensor([2, 2]), top_k=1)
    expected = comps["tokenizer"].decode(tokens).clamp(0, 1).permute(0, 2, 1, 3, 4)
    torch.testing.assert_close(frames, expected)


def test_class_to_video_bad_inputs():
    pipe = ClassToVideoPipeline(**get_dummy_components())
    pipe.set_progress_bar_config(disable=True)
    with pytest.raises(ValueError, match="out of range"):
        pipe([3])
    with pytest.raises(ValueError, match="unknown class name 'Archer'.*Archery"):
        pipe("Archer")
    with pytest.raises(ValueError, match="output_type"):
        pipe([0], output_type="gif")
    with pytest.raises(ValueError, match="num_videos_per_label"):
        pipe([0], num_videos_per_label=0)
    with pytest.raises(ValueError, match="frame-prediction"):
        ClassToVideoPipeline(**{**get_dummy_components(), "generator": get_dummy_components(True)["generator"]})


def test_pipeline_save_load_round_trip(tmp_path):
    pipe = ClassToVideoPipeline(**get_dummy_components())
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(tmp_path)
    assert (tmp_path / "model_index.json").is_file()
    assert (tmp_path / "tokenizer" / "model.safetensors").is_file()
    assert (tmp_path / "generator" / "model.safetensors").is_file()
    loaded = ClassToVideoPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(pipe(**get_dummy_inputs()).frames, loaded(**get_dummy_inputs()).frames)


def test_frame_prediction_pipeline_conditioning():
    comps = get_dummy_components(frame_prediction=True)
    pipe = FramePredictionPipeline(**comps)
    pipe.set_progress_bar_config(disable=True)
    video = torch.rand(2, 3, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    out = pipe(video, num_cond_frames=2, top_k=1, output_type="pt").frames
    assert out.shape == (2, 4, 3, 16, 16)
    # official conditioning: frames 0..1, last repeated to 4, deterministic tokens + separator
    ctx = repeat_to_num_frames(video[:, :, :2], 4)
    assert torch.equal(ctx[:, :, 2], video[:, :, 1]) and torch.equal(ctx[:, :, 3], video[:, :, 1])
    tok = comps["tokenizer"]
    cond = tok.encode(ctx).indices
    cond_ids = torch.cat([cond, torch.full((2, 1), comps["generator"].config.separator_token_id)], 1)
    tokens = comps["generator"].generate(cond_ids=cond_ids, top_k=1)
    torch.testing.assert_close(out, tok.decode(tokens).clamp(0, 1).permute(0, 2, 1, 3, 4))
    # uint8 numpy input gives the same as float
    np_video = (video.permute(0, 2, 3, 4, 1).numpy() * 255).round().astype(np.uint8)
    assert pipe(np_video, num_cond_frames=2, top_k=1).frames.shape == (2, 4, 16, 16, 3)
    with pytest.raises(ValueError, match="num_cond_frames"):
        pipe(video, num_cond_frames=5)
    with pytest.raises(ValueError, match="video"):
        pipe(torch.rand(2, 3, 4, 8, 8))


def test_export_to_video_round_trip(tmp_path):
    frames = np.zeros((6, 15, 17, 3), dtype=np.float32)  # odd sizes are padded
    frames[:, :, :8] = 1.0
    path = export_to_video(frames, str(tmp_path / "v.mp4"), fps=8)
    with av.open(path) as c:
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        rate = c.streams.video[0].average_rate
    assert len(decoded) == 6 and decoded[0].shape == (16, 18, 3) and float(rate) == 8
    assert decoded[0][:15, :6].mean() > 240 and decoded[0][:15, 10:17].mean() < 15
    with pytest.raises(ValueError, match="frames"):
        export_to_video(np.zeros((4, 4, 3)), str(tmp_path / "bad.mp4"))
    with pytest.raises(TypeError, match="dtype"):
        export_to_video(np.zeros((2, 4, 4, 3), dtype=np.int32), str(tmp_path / "bad.mp4"))


def test_class_labels_of_the_wrong_type_are_refused():
    pipe = ClassToVideoPipeline(**get_dummy_components())
    pipe.set_progress_bar_config(disable=True)
    for bad in ([2.9], [True], 1.0, [None]):
        with pytest.raises(TypeError, match="class ids"):
            pipe(bad)
    assert pipe.get_label_ids(["archery", 2, np.int64(0)]) == [1, 2, 0]


def test_save_pretrained_writes_the_hf_vidtok_card_and_rejects_model_folders(tmp_path):
    from huggingface_hub import ModelCard

    pipe = ClassToVideoPipeline(**get_dummy_components())
    pipe.save_pretrained(tmp_path / "pipe")
    card = ModelCard.load(tmp_path / "pipe" / "README.md")
    assert card.data.library_name == "hf_vidtok" and "ClassToVideoPipeline.from_pretrained" in card.text
    pipe.tokenizer.save_pretrained(tmp_path / "tok")
    with pytest.raises(FileNotFoundError, match="no model_index.json.*hf-vidtok pipeline"):
        ClassToVideoPipeline.from_pretrained(tmp_path / "tok")
    with pytest.raises(ValueError, match="safetensors only"):
        pipe.save_pretrained(tmp_path / "pickled", safe_serialization=False)


def test_pipeline_folder_with_official_exports_as_components(larp_fixture_dir, tmp_path):
    """A pipeline folder whose tokenizer/ and generator/ are official LARP exports (config.json + model.safetensors)
    loads: each component goes through its class's from_pretrained, which converts official exports exactly."""
    import shutil

    from hf_vidtok.models.larp.convert_larp_original_to_hf import load_original_model as load_tokenizer
    from hf_vidtok.models.video_ar.convert_larp_ar_original_to_hf import load_original_model as load_ar

    tokenizer, generator = load_tokenizer(str(larp_fixture_dir)), load_ar(str(larp_fixture_dir / "ar"))
    ClassToVideoPipeline(tokenizer=tokenizer, generator=generator).save_pretrained(tmp_path / "pipe")
    for part, source in (("tokenizer", larp_fixture_dir), ("generator", larp_fixture_dir / "ar")):
        shutil.rmtree(tmp_path / "pipe" / part)
        (tmp_path / "pipe" / part).mkdir()
        for name in ("config.json", "model.safetensors"):
            shutil.copy(source / name, tmp_path / "pipe" / part / name)
    pipe = ClassToVideoPipeline.from_pretrained(tmp_path / "pipe")
    for loaded, reference in ((pipe.tokenizer, tokenizer), (pipe.generator, generator)):
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in reference.state_dict().items())
    frames = pipe([1], guidance_scale=1.0, top_k=1, output_type="pt").frames
    assert frames.shape == (1, 8, 3, 32, 32)
