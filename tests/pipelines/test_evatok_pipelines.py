"""ClassToVideoPipeline / FramePredictionPipeline with an adaptive EvatokTokenizer and a variable-length
generator: per-sample counts, decoding with each sample's own counts, condition blocks, save/load, Hub."""

import os
import sys

import numpy as np
import pytest
import torch

from hf_vidtok import EvatokTokenizer, EvatokTokenizerConfig, LarpTokenizer, LarpTokenizerConfig
from hf_vidtok.models.video_ar import VideoARGenerator, VideoARGeneratorConfig
from hf_vidtok.pipelines import ClassToVideoPipeline, FramePredictionPipeline
from hf_vidtok.pipelines.frame_prediction.pipeline_frame_prediction import condition_assignment

LEVELS = (1, 2, 4)
LABELS = {0: "ApplyEyeMakeup", 1: "Archery", 2: "BabyCrawling"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run fastest single-threaded (and do not fight other processes for cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_evatok(seed=0, **overrides):
    torch.manual_seed(seed)
    config = EvatokTokenizerConfig(
        **{
            **dict(
                image_size=(8, 12), num_frames=6, patch_size=4, temporal_patch_size=2, token_levels=LEVELS,
                hidden_size=16, num_attention_heads=2, encoder_layers=1, decoder_layers=1, codebook_size=23,
                code_dim=4, mlp_ratio=2.0,
            ),
            **overrides,
        }
    )
    return EvatokTokenizer(config).eval()


def tiny_generator(seed=0, frame_prediction=False, **overrides):
    torch.manual_seed(seed)
    kw = dict(
        hidden_size=24, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, codebook_size=23,
        token_levels=list(LEVELS), num_blocks=3,
    )
    if frame_prediction:
        kw.update(frame_prediction=True, num_cond_tokens=5 + 1)  # condition blocks (4, 1) + separator
    else:
        kw.update(num_classes=3, id2label=LABELS)
    model = VideoARGenerator(VideoARGeneratorConfig(**{**kw, **overrides})).eval()
    with torch.no_grad():
        model.lm_head.weight.normal_(std=1.0)  # the official init zeroes the head
    return model


def c2v_pipe(seed=0):
    pipe = ClassToVideoPipeline(tokenizer=tiny_evatok(seed), generator=tiny_generator(seed))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_class_to_video_decodes_each_sample_with_its_own_counts():
    pipe = c2v_pipe()
    out = pipe([0, "archery", 2], num_videos_per_label=2, guidance_scale=1.5, generator=torch.Generator().manual_seed(0))
    assert out.frames.shape == (6, 6, 8, 12, 3) and out.frames.dtype == np.float32
    assert out.token_counts.shape == (6, 3) and np.isin(out.token_counts, LEVELS).all()
    np.testing.assert_array_equal(out.num_tokens, out.token_counts.sum(1))
    assert len(set(out.num_tokens.tolist())) > 1  # lengths differ between samples
    # the same generator call, parsed, then every clip decoded alone with its own counts
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    seq = pipe.generator.generate(labels, cfg_scale=1.5, generator=torch.Generator().manual_seed(0))
    indices, counts = pipe.generator.parse_generated(seq)
    assert np.array_equal(counts.numpy(), out.token_counts)
    for b in range(6):
        n = int(counts[b].sum())
        with torch.no_grad():
            alone = pipe.tokenizer.decode(indices[b : b + 1, :n], counts[b : b + 1]).clamp(0, 1)
        np.testing.assert_allclose(out.frames[b], alone[0].permute(1, 2, 3, 0).numpy(), atol=1e-5, rtol=1e-5)
    again = pipe([0, "archery", 2], num_videos_per_label=2, guidance_scale=1.5, generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(again.frames, out.frames)
    capped = pipe([0, 1, 2], max_total_tokens=4, generator=torch.Generator().manual_seed(1))
    assert (capped.num_tokens <= 4).all() and capped.frames.shape[0] == 3


def test_frame_prediction_forces_the_condition_blocks():
    tokenizer, generator = tiny_evatok(1), tiny_generator(1, frame_prediction=True)
    pipe = FramePredictionPipeline(tokenizer=tokenizer, generator=generator)
    pipe.set_progress_bar_config(disable=True)
    video = torch.rand(2, 3, 6, 8, 12, generator=torch.Generator().manual_seed(0))
    out = pipe(video, num_cond_frames=3, generator=torch.Generator().manual_seed(0), temperature=1.5, output_type="pt")
    assert out.frames.shape == (2, 6, 3, 8, 12)
    # 3 frames fill 2 blocks of 2 frames; 5 condition tokens over 2 blocks -> (4, 1), forced in the output
    assert condition_assignment(LEVELS, 2, 5) == [4, 1]
    assert (out.token_counts[:, :2] == [4, 1]).all() and (out.num_tokens == out.token_counts.sum(1)).all()
    # by hand: condition = tokens of blocks 0-1 at assignment (4, 1, min) of the repeated context + separator
    from hf_vidtok.data import repeat_to_num_frames

    context = repeat_to_num_frames(video[:, :, :3], 6)
    with torch.no_grad():
        cond = tokenizer.encode(context, assignment=(4, 1, 1)).indices[:, :5]
    cond_ids = torch.cat([cond, torch.full((2, 1), generator.config.separator_token_id)], 1)
    seq = generator.generate(cond_ids=cond_ids, forced_prefix=[4, 1], generator=torch.Generator().manual_seed(0), temperature=1.5)
    indices, counts = generator.parse_generated(seq)
    with torch.no_grad():
        expected = tokenizer.decode(indices, counts).clamp(0, 1).permute(0, 2, 1, 3, 4)
    torch.testing.assert_close(out.frames, expected)
    explicit = pipe(video, num_cond_frames=3, condition_token_counts=[4, 1], generator=torch.Generator().manual_seed(0), temperature=1.5, output_type="pt")
    torch.testing.assert_close(explicit.frames, out.frames)
    with pytest.raises(ValueError, match="condition_token_counts"):
        pipe(video, num_cond_frames=3, condition_token_counts=[2, 2])
    with pytest.raises(ValueError, match="condition_token_counts"):
        pipe(video, num_cond_frames=1)  # 1 block cannot hold 5 tokens
    with pytest.raises(ValueError, match="video"):
        pipe(torch.rand(2, 3, 6, 8, 8))


def test_component_checks():
    larp = LarpTokenizer(
        LarpTokenizerConfig(
            frame_num=4, input_size=16, patch_size=8, temporal_patch_size=2, encoder_hidden_size=32,
            decoder_hidden_size=32, encoder_num_heads=2, decoder_num_heads=2, encoder_depth=1, decoder_depth=1,
            bottleneck_token_num=9, codebook_size=23, bottleneck_dim=4, prior_name=None,
        )
    )
    with pytest.raises(ValueError, match="EvatokTokenizer"):
        ClassToVideoPipeline(tokenizer=larp, generator=tiny_generator())
    fixed = VideoARGenerator(
        VideoARGeneratorConfig(hidden_size=24, num_hidden_layers=1, num_attention_heads=2, codebook_size=23,
                               max_seq_len=9, num_classes=3)
    )
    with pytest.raises(ValueError, match="variable-length"):
        ClassToVideoPipeline(tokenizer=tiny_evatok(), generator=fixed)
    with pytest.raises(ValueError, match="token_levels"):
        ClassToVideoPipeline(tokenizer=tiny_evatok(), generator=tiny_generator(token_levels=[1, 2, 8]))
    with pytest.raises(ValueError, match="codebook_size"):
        ClassToVideoPipeline(tokenizer=tiny_evatok(codebook_size=29), generator=tiny_generator())
    with pytest.raises(TypeError, match="tokenizer"):
        ClassToVideoPipeline(tokenizer=fixed, generator=tiny_generator())
    with pytest.raises(ValueError, match="max_total_tokens"):
        ClassToVideoPipeline(tokenizer=larp, generator=fixed)([0], max_total_tokens=3)


def test_save_load_folder_and_hub_round_trip(tmp_path):
    pipe = c2v_pipe(2)
    ref = pipe(["Archery", 0], guidance_scale=1.25, generator=torch.Generator().manual_seed(3))
    pipe.save_pretrained(tmp_path / "pipe")
    for sub in ("tokenizer", "generator"):
        assert (tmp_path / "pipe" / sub / "model.safetensors").is_file()
    loaded = ClassToVideoPipeline.from_pretrained(tmp_path / "pipe")
    assert isinstance(loaded.tokenizer, EvatokTokenizer) and loaded.generator.config.token_levels == list(LEVELS)
    loaded.set_progress_bar_config(disable=True)
    out = loaded(["Archery", 0], guidance_scale=1.25, generator=torch.Generator().manual_seed(3))
    np.testing.assert_array_equal(out.frames, ref.frames)
    np.testing.assert_array_equal(out.token_counts, ref.token_counts)

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hub"))
    from fake_hub import FakeHub, hub_environment

    from hf_vidtok.hub import push_to_hub

    hub = FakeHub()
    try:
        with hub_environment(hub, tmp_path / "hf_cache"):
            push_to_hub(pipe, "user/tiny-evatok-c2v")
            assert {"model_index.json", "tokenizer/model.safetensors", "generator/config.json"} <= set(
                hub.files("user/tiny-evatok-c2v")
            )
            remote = ClassToVideoPipeline.from_pretrained("user/tiny-evatok-c2v")
            remote.set_progress_bar_config(disable=True)
            out = remote(["Archery", 0], guidance_scale=1.25, generator=torch.Generator().manual_seed(3))
            np.testing.assert_array_equal(out.frames, ref.frames)
            np.testing.assert_array_equal(out.num_tokens, ref.num_tokens)
    finally:
        hub.close()


def test_class_to_video_with_a_repeat_level():
    """A tokenizer with a repeat level (token_levels starting at 0): the generator samples blocks of 0 tokens, and
    each such block's frames are exactly the previous block's; each clip decodes as it would alone."""
    levels = (0, 1, 4)
    tokenizer = tiny_evatok(2, token_levels=levels, decoder_carry="output")
    generator = tiny_generator(2, token_levels=list(levels))
    with torch.no_grad():  # make the repeat level likely, so that the samples hold some
        generator.lm_head.weight[generator.config.length_token_ids[0]] += 0.5 * generator.norm.weight.sign()
    pipe = ClassToVideoPipeline(tokenizer=tokenizer, generator=generator)
    pipe.set_progress_bar_config(disable=True)
    out = pipe([0, 1, 2], num_videos_per_label=3, guidance_scale=1.5, generator=torch.Generator().manual_seed(0),
               output_type="pt")
    counts = torch.from_numpy(out.token_counts)
    assert counts.shape == (9, 3) and bool((counts == 0).any()) and bool((counts > 0).any())
    frames = out.frames  # (B, T, C, H, W), 2 frames per block
    repeated = 0
    for b, t in (counts[:, 1:] == 0).nonzero().tolist():
        torch.testing.assert_close(frames[b, 2 * (t + 1) : 2 * (t + 2)], frames[b, 2 * t : 2 * (t + 1)], rtol=0, atol=0)
        repeated += 1
    assert repeated > 0
    seq = pipe.generator.generate(torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2]), cfg_scale=1.5,
                                  generator=torch.Generator().manual_seed(0))
    indices, parsed = pipe.generator.parse_generated(seq)
    assert torch.equal(parsed, counts)
    for b in range(9):
        n = int(parsed[b].sum())
        with torch.no_grad():
            alone = pipe.tokenizer.decode(indices[b : b + 1, :n], parsed[b : b + 1]).clamp(0, 1)
        torch.testing.assert_close(frames[b], alone[0].permute(1, 0, 2, 3), atol=1e-5, rtol=1e-5)
