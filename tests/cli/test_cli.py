"""End-to-end tests of the `hf-vidtok` command on tiny random models and videos made in the test."""

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hubtest_utils import CLASS_NAMES, tiny_generator, tiny_tokenizer
from huggingface_hub import ModelCard
from safetensors import safe_open

from hf_vidtok.commands import build_parser, main


def write_video(path, num_frames=10, height=20, width=24, fps=10, seed=0):
    """A small h264 mp4 of moving colour gradients (PyAV)."""
    import av

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(3,))
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(num_frames):
            frame = np.stack(
                [(xx * 8 + t * 10 + base[0]) % 256, (yy * 8 + base[1]) % 256, np.full_like(xx, base[2])], -1
            )
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame.astype(np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


COMMANDS = ("convert", "encode", "reconstruct", "generate", "pipeline", "evaluate", "publish", "pack")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def last_json(out):
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    tiny_tokenizer(seed=11).save_pretrained(root / "tokenizer")
    tiny_generator(seed=11).save_pretrained(root / "generator")
    videos = [write_video(root / f"clip{i}.mp4", seed=i) for i in range(3)]
    return {"root": root, "tokenizer": root / "tokenizer", "generator": root / "generator", "videos": videos}


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
    with pytest.raises(SystemExit) as exc:
        main(["encode"])  # missing arguments: argparse usage error
    assert exc.value.code == 2


def test_console_script_entry_point(tmp_path):
    """The installed `hf-vidtok` console script (hf_vidtok.commands:main) exits 1 with one line on errors."""
    script = Path(sys.executable).parent / "hf-vidtok"
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "hf_vidtok.commands"]
    missing = tmp_path / "missing.mp4"
    bad = subprocess.run(
        cmd + ["encode", str(missing), "--model", str(tmp_path), "--output", str(tmp_path / "t.safetensors")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [f"hf-vidtok encode: error: no such video file: {missing}"]


def _library_clips(path, tokenizer_frames=4, size=16):
    """Every clip of a whole video as the library reads it: consecutive clips, the last one padded by
    repeating the last frame (read_video_clip's rule), short-side resize + center crop."""
    from hf_vidtok.data import probe_video
    from hf_vidtok.data.transforms import VideoClipTransform
    from hf_vidtok.data.video_reader import read_video_clip

    n = probe_video(path).num_frames
    starts = list(range(0, n, tokenizer_frames))
    return starts, torch.stack([VideoClipTransform(size)(read_video_clip(path, tokenizer_frames, start=s)) for s in starts])


def test_encode_whole_videos_to_safetensors(models, tmp_path, capsys):
    out_file = tmp_path / "tokens.safetensors"
    code, out, err = run(
        capsys, "encode", *models["videos"], "--model", models["tokenizer"], "--output", out_file, "--batch_size", 2
    )
    assert code == 0, err
    result = last_json(out)
    # 3 videos of 10 frames at 10 fps: clips of 4 frames -> 3 clips each (the last padded), 8 tokens per clip
    assert result["videos"] == 3 and result["clips"] == 9 and result["tokens"] == 72
    assert result["tokens_per_clip"] == 8 and result["seconds"] == pytest.approx(3.0)
    assert result["tokens_per_second"] == pytest.approx(24.0) and result["encode_tokens_per_s"] > 0
    with safe_open(str(out_file), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata()
    assert set(tensors) == {"indices", "video_index", "start_frame", "start_time"}  # fixed length: no token_counts
    assert tensors["indices"].shape == (9, 8) and tensors["indices"].dtype == torch.long
    assert tensors["video_index"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert tensors["start_frame"].tolist() == [0, 4, 8] * 3
    torch.testing.assert_close(tensors["start_time"], torch.tensor([0.0, 0.4, 0.8] * 3, dtype=torch.float64))
    assert json.loads(meta["paths"]) == [str(p) for p in models["videos"]]
    assert json.loads(meta["fps"]) == pytest.approx([10.0] * 3) and json.loads(meta["num_source_frames"]) == [10] * 3
    # same ids as the library on the same clips
    from hf_vidtok import LarpTokenizer

    tokenizer = LarpTokenizer.from_pretrained(models["tokenizer"]).eval()
    clips = torch.cat([_library_clips(p)[1] for p in models["videos"]])
    with torch.no_grad():
        assert torch.equal(tokenizer.encode(clips).indices, tensors["indices"])


def test_resize_modes_and_clip_plans(models, tmp_path):
    """short_side_crop keeps the aspect ratio (center crop), stretch squeezes the whole frame; strided plans;
    token counts of fixed-length outputs."""
    from hf_vidtok.commands.whole_video import ClipTokens, fit_frames, plan_clips

    frames = np.zeros((2, 20, 40, 3), np.uint8)
    frames[:, :, :10] = 255  # a white band on the left quarter
    crop, stretch = fit_frames(frames, 16, 16, "short_side_crop"), fit_frames(frames, 16, 16, "stretch")
    assert crop.shape == stretch.shape == (3, 2, 16, 16)
    assert float(crop[0, 0, :, 0].mean()) < 0.1 and float(crop[0, 0, :, 2:].max()) == 0.0  # the band is cut away
    assert float(stretch[0, 0, :, 0].mean()) == 1.0 and float(stretch[0, 0, :, -1].mean()) == 0.0
    assert fit_frames(frames, 8, 24, "short_side_crop").shape == (3, 2, 8, 24)
    with pytest.raises(ValueError, match="resize"):
        fit_frames(frames, 16, 16, "pad")

    plan = plan_clips(models["videos"][0], 4, frame_stride=3)
    assert plan.starts == (0,) and plan.valid == (4,) and plan.num_output_frames == 4  # frames 0,3,6,9

    assert ClipTokens(torch.zeros(2, 8, dtype=torch.long)).lengths().tolist() == [8, 8]


def test_variable_length_tokenizer_writes_token_counts(tmp_path, capsys):
    """An EvatokTokenizer (indices padded with -1 + token_counts) goes through encode and reconstruct as is."""
    from hf_vidtok import EvatokTokenizer, EvatokTokenizerConfig

    torch.manual_seed(0)
    config = EvatokTokenizerConfig(
        image_size=16, num_frames=6, patch_size=4, temporal_patch_size=2, token_levels=(2, 4, 8), hidden_size=24,
        num_attention_heads=2, encoder_layers=2, decoder_layers=2, codebook_size=37, code_dim=4, align_decoder_layer=1,
    )  # fmt: skip
    tokenizer = EvatokTokenizer(config).eval()
    tokenizer.save_pretrained(tmp_path / "evatok")
    video = write_video(tmp_path / "v.mp4", num_frames=14, fps=7)
    code, out, err = run(capsys, "encode", video, "--model", tmp_path / "evatok", "--output", tmp_path / "t.safetensors")
    assert code == 0, err
    with safe_open(str(tmp_path / "t.safetensors"), "pt") as f:
        indices, counts = f.get_tensor("indices"), f.get_tensor("token_counts")
    assert counts.shape == (3, 3) and indices.shape[0] == 3  # 14 frames -> clips of 6, 6, 2 (+ 4 padding)
    assert ((indices >= 0).sum(1) == counts.sum(1)).all() and last_json(out)["tokens"] == int(counts.sum())
    code, out, err = run(capsys, "reconstruct", video, "--model", tmp_path / "evatok", "--output", tmp_path / "r.mp4")
    assert code == 0, err
    assert last_json(out)["frames"] == 14 and last_json(out)["tokens"] == int(counts.sum())


def test_errors_are_one_line_with_exit_status_1(models, tmp_path, capsys):
    video = models["videos"][0]
    cases = [
        (
            ["encode", tmp_path / "nope.mp4", "--model", models["tokenizer"], "--output", tmp_path / "t.safetensors"],
            "no such video file",
        ),
        (
            ["encode", video, "--model", tmp_path / "missing_model", "--output", tmp_path / "t.safetensors"],
            "no such model folder",
        ),
        (
            ["encode", video, "--model", models["generator"], "--output", tmp_path / "t.safetensors"],
            "is a video_ar model, expected a tokenizer",
        ),
        (
            ["encode", video, "--model", models["tokenizer"], "--output", tmp_path / "t.safetensors", "--num_frames", 7],
            "does not match",
        ),
        (
            ["reconstruct", video, "--model", models["generator"], "--output", tmp_path / "r.mp4"],
            "expected a tokenizer",
        ),
        (
            [
                "generate",
                "Biking",
                "--tokenizer",
                models["tokenizer"],
                "--generator",
                models["tokenizer"],
                "--output_dir",
                tmp_path,
            ],
            "expected a generator",
        ),
        (
            ["generate", "Biking", "--model", models["tokenizer"], "--output_dir", tmp_path],
            "expected a ClassToVideoPipeline",
        ),
        (["publish", tmp_path / "nope", "--repo_id", "user/x"], "no such folder"),
        (
            ["publish", models["tokenizer"], "--repo_id", "user/x", "--eval_results", tmp_path / "none.json"],
            "--eval_results: no such file",
        ),
        (["convert", "--input", tmp_path / "nope", "--output", tmp_path / "o"], "no such folder"),
        (["convert", "--input", models["tokenizer"], "--output", tmp_path / "o"], "already an hf_vidtok model (model_type larp_tokenizer)"),
    ]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    cases.append((["encode", broken, "--model", models["tokenizer"], "--output", tmp_path / "t.safetensors"], str(broken)))
    for argv, message in cases:
        code, out, err = run(capsys, *argv)
        assert code == 1, (argv, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"hf-vidtok {argv[0]}: error: "), (argv, err)
        assert message in lines[0], (argv, err)
        assert out == ""


def test_publish_folder_to_fake_hub_and_load_back(models, hub, tmp_path, capsys):
    from hf_vidtok import LarpTokenizer

    run_dir = tmp_path / "run"
    folder = run_dir / "tokenizer"
    tokenizer = LarpTokenizer.from_pretrained(models["tokenizer"])
    tokenizer.save_pretrained(folder)
    (run_dir / "eval_results.json").write_text(
        json.dumps({"step": 20, "psnr": 27.5, "ssim": 0.8125, "initial_psnr": 9.5})
    )
    code, out, err = run(
        capsys, "publish", folder, "--repo_id", "user/cli-tok", "--revision", "v1", "--commit_message", "cli"
    )
    assert code == 0, err
    result = last_json(out)
    assert result["commit"] == hub.repos["user/cli-tok"].branches["v1"] and result["revision"] == "v1"
    card = ModelCard(hub.files("user/cli-tok", "v1")["README.md"].decode())
    assert card.data.library_name == "hf_vidtok"
    assert {(r.metric_name, r.metric_value) for r in card.data.eval_results} == {("PSNR", 27.5), ("SSIM", 0.8125)}
    loaded = LarpTokenizer.from_pretrained("user/cli-tok", revision="v1")
    for key, value in tokenizer.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    # the CLI loads models by repo id too
    code, out, err = run(
        capsys,
        "encode",
        models["videos"][0],
        "--model",
        "user/cli-tok",
        "--revision",
        "v1",
        "--output",
        tmp_path / "t.safetensors",
    )
    assert code == 0, err
    code, out, err = run(
        capsys, "encode", models["videos"][0], "--model", "user/not-there", "--output", tmp_path / "t.safetensors"
    )
    assert code == 1 and "not found" in err


def test_convert_official_exports(larp_fixture_dir, hub, tmp_path, capsys):
    from hf_vidtok import LarpTokenizer
    from hf_vidtok.models.video_ar import VideoARGenerator

    code, out, err = run(capsys, "convert", "--input", larp_fixture_dir, "--output", tmp_path / "tok")
    assert code == 0, err
    assert last_json(out)["kind"] == "tokenizer"
    tokenizer = LarpTokenizer.from_pretrained(tmp_path / "tok")
    assert (tmp_path / "tok" / "README.md").is_file() and not list((tmp_path / "tok").glob("*.bin"))
    card = ModelCard.load(tmp_path / "tok" / "README.md")
    assert card.data.library_name == "hf_vidtok"
    from hf_vidtok.models.larp.convert_larp_original_to_hf import load_original_model

    reference = load_original_model(str(larp_fixture_dir))
    for key, value in reference.state_dict().items():
        assert torch.equal(tokenizer.state_dict()[key], value), key

    code, out, err = run(
        capsys,
        "convert",
        "--input",
        larp_fixture_dir / "ar",
        "--output",
        tmp_path / "ar",
        "--push_to_hub",
        "user/conv-ar",
    )
    assert code == 0, err
    result = last_json(out)
    assert result["kind"] == "ar" and result["commit"] == hub.repos["user/conv-ar"].branches["main"]
    local = VideoARGenerator.from_pretrained(tmp_path / "ar")
    pushed = VideoARGenerator.from_pretrained("user/conv-ar")
    for key, value in local.state_dict().items():
        assert torch.equal(pushed.state_dict()[key], value), key
    assert ModelCard(hub.files("user/conv-ar")["README.md"].decode()).data.library_name == "hf_vidtok"


def test_parser_types():
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["encode", "v.mp4", "--model", "m", "--output", "o", "--frame_stride", "0"])
    args = parser.parse_args(["generate", "Biking", "3", "--model", "m", "--output_dir", "o"])
    assert args.classes == ["Biking", "3"] and args.guidance_scale == 1.25


def test_class_ids_from_names_and_numbers(models, capsys):
    from hf_vidtok.commands import CLIError
    from hf_vidtok.commands.generate import class_ids as _class_ids

    config = tiny_generator().config
    assert _class_ids(["Biking", "jumprope", "0"], config) == [1, 2, 0]
    with pytest.raises(CLIError, match="unknown class name 'Swimming' in `classes`; known classes: " + re.escape(str(CLASS_NAMES))):
        _class_ids(["Swimming"], config)
    with pytest.raises(CLIError, match="class id 3 is out of range"):
        _class_ids(["3"], config)


def test_reconstruct_whole_video_writes_mp4_and_reports_psnr_ssim(models, tmp_path, capsys):
    from hf_vidtok import LarpTokenizer
    from hf_vidtok.data import probe_video, read_video_clip
    from hf_vidtok.metrics import psnr, ssim

    video, out_file = models["videos"][1], tmp_path / "rec" / "recon.mp4"
    code, out, err = run(capsys, "reconstruct", video, "--model", models["tokenizer"], "--output", out_file)
    assert code == 0, err
    result = last_json(out)
    assert result["output"] == str(out_file) and result["tokens"] == 24 and result["clips"] == 3
    assert result["frames"] == 10 and result["fps"] == pytest.approx(10.0) and result["seconds"] == pytest.approx(1.0)
    assert result["tokens_per_second"] == pytest.approx(24.0)
    tokenizer = LarpTokenizer.from_pretrained(models["tokenizer"]).eval()
    _, clips = _library_clips(video)
    with torch.no_grad():
        recon = tokenizer.decode(tokenizer.encode(clips).indices).clamp(0, 1)
    # the whole video = the clips' real frames (the last clip holds 2 real frames and 2 padding frames)
    whole_recon = torch.cat(list(recon), dim=1)[:, :10][None]  # (1, C, 10, H, W)
    whole_clip = torch.cat(list(clips), dim=1)[:, :10][None]
    assert result["psnr"] == pytest.approx(float(psnr(whole_recon, whole_clip)), rel=1e-6)
    assert result["ssim"] == pytest.approx(float(ssim(whole_recon, whole_clip)), rel=1e-6)
    index = probe_video(out_file)
    assert index.num_frames == 10 and index.frame_times()[-1] == pytest.approx(0.9)
    written = read_video_clip(out_file, 10, start=0)
    assert written.shape == (10, 16, 16, 3)
    # the mp4 holds the reconstruction (up to H.264 loss)
    expected = whole_recon[0].permute(1, 2, 3, 0).numpy()
    assert np.abs(written.astype(np.float32) / 255 - expected).mean() < 0.06
    code, out, err = run(
        capsys, "reconstruct", video, "--model", models["tokenizer"], "--output", tmp_path / "sbs.mp4", "--side_by_side",
        "--resize", "stretch", "--batch_size", 1, "--no_progress",
    )  # fmt: skip
    assert code == 0, err
    assert read_video_clip(tmp_path / "sbs.mp4", 10, start=0).shape == (10, 16, 32, 3)


def test_reconstruct_a_ten_second_video_keeps_its_duration(models, tmp_path, capsys):
    """A 10 s, 25 fps, 48x64 video (250 frames, not a multiple of the 4-frame clips): the reconstruction has
    the same frame count, frame rate and duration."""
    from hf_vidtok.data import probe_video

    source = write_video(tmp_path / "ten_seconds.mp4", num_frames=250, height=48, width=64, fps=25, seed=3)
    code, out, err = run(
        capsys, "reconstruct", source, "--model", models["tokenizer"], "--output", tmp_path / "rec.mp4",
        "--batch_size", 16,
    )  # fmt: skip
    assert code == 0, err
    result = last_json(out)
    assert result["frames"] == 250 and result["clips"] == 63 and result["seconds"] == pytest.approx(10.0)
    assert result["tokens"] == 63 * 8 and result["tokens_per_second"] == pytest.approx(50.4)
    written, original = probe_video(tmp_path / "rec.mp4"), probe_video(source)
    assert written.num_frames == original.num_frames == 250
    assert written.frame_times()[-1] == pytest.approx(original.frame_times()[-1]) == pytest.approx(9.96)
    assert (written.width, written.height) == (16, 16)


def test_generate_from_pipeline_folder_and_from_parts(models, tmp_path, capsys):
    from hf_vidtok import LarpTokenizer
    from hf_vidtok.data import probe_video
    from hf_vidtok.models.video_ar import VideoARGenerator
    from hf_vidtok.pipelines import ClassToVideoPipeline

    tokenizer = LarpTokenizer.from_pretrained(models["tokenizer"])
    generator = VideoARGenerator.from_pretrained(models["generator"])
    ClassToVideoPipeline(tokenizer=tokenizer, generator=generator).save_pretrained(tmp_path / "pipe")
    argv = ["Biking", "2", "--num_videos_per_label", 2, "--seed", 5, "--fps", 4, "--no_progress"]
    code, out, err = run(capsys, "generate", *argv, "--model", tmp_path / "pipe", "--output_dir", tmp_path / "a")
    assert code == 0, err
    result = last_json(out)
    assert result["class_ids"] == [1, 2]
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["000_Biking.mp4", "001_Biking.mp4", "002_JumpRope.mp4", "003_JumpRope.mp4"]
    assert probe_video(tmp_path / "a" / "000_Biking.mp4").num_frames == 4
    # a pipeline folder also serves as --model of encode (its tokenizer/ sub-folder)
    code, out, err = run(
        capsys, "encode", models["videos"][0], "--model", tmp_path / "pipe", "--output", tmp_path / "t.safetensors"
    )
    assert code == 0 and last_json(out)["tokens_per_clip"] == 8, err
    # same seed, models given separately: the same videos
    code, out, err = run(
        capsys, "generate", *argv, "--tokenizer", models["tokenizer"], "--generator", models["generator"],
        "--output_dir", tmp_path / "b",
    )  # fmt: skip
    assert code == 0, err
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    code, out, err = run(capsys, "generate", "Swimming", "--model", tmp_path / "pipe", "--output_dir", tmp_path / "c")
    assert code == 1 and "unknown class name 'Swimming'" in err and len(err.strip().splitlines()) == 1
    code, out, err = run(capsys, "generate", "7", "--model", tmp_path / "pipe", "--output_dir", tmp_path / "c")
    assert code == 1 and "class id 7 is out of range" in err


def test_evaluate_two_folders(models, tmp_path, capsys):
    from hf_vidtok.data import VideoClipTransform, read_video_clip
    from hf_vidtok.metrics import LPIPS, InceptionI3D, psnr, ssim

    real, fake = tmp_path / "real", tmp_path / "fake"
    real.mkdir(), fake.mkdir()
    for i in range(2):
        write_video(real / f"v{i}.mp4", num_frames=16, seed=i)
        write_video(fake / f"v{i}.mp4", num_frames=16, seed=i + 10)
    code, out, err = run(capsys, "evaluate", "--real", real, "--generated", fake, "--num_frames", 4, "--resolution", 16)
    assert code == 0, err
    result = last_json(out)

    def clips(folder, num_frames):
        return torch.stack(
            [VideoClipTransform(16)(read_video_clip(folder / f"v{i}.mp4", num_frames, start=0)) for i in range(2)]
        )

    assert result["num_pairs"] == 2
    assert result["psnr"] == pytest.approx(float(psnr(clips(fake, 4), clips(real, 4))), rel=1e-5)
    assert result["ssim"] == pytest.approx(float(ssim(clips(fake, 4), clips(real, 4))), rel=1e-5)
    assert "lpips" not in result and "fvd" not in result

    # LPIPS and FVD with small random networks saved as safetensors (no download)
    torch.manual_seed(0)
    lpips = LPIPS()
    lpips_file = lpips.save_pretrained(tmp_path / "lpips")
    i3d_file = InceptionI3D(width_divisor=8).save_pretrained(tmp_path / "i3d")
    argv = ["evaluate", "--real", real, "--generated", fake, "--num_frames", 16, "--resolution", 16]
    argv += ["--lpips_weights", lpips_file, "--i3d_weights", i3d_file, "--output", tmp_path / "res.json"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    result = last_json(out)
    saved = json.loads((tmp_path / "res.json").read_text())
    assert saved.keys() == result.keys() and saved["fvd"] == pytest.approx(result["fvd"])
    with torch.no_grad():  # LPIPS per video (mean over frames), then over videos
        expected_lpips = float(lpips(clips(fake, 16), clips(real, 16)).double().mean())
    assert result["lpips"] == pytest.approx(expected_lpips, rel=1e-5)
    assert result["fvd"] > 0 and np.isfinite(result["fvd"])

    code, out, err = run(capsys, "evaluate", "--real", real, "--generated", fake, "--metrics", "fvd")
    assert code == 1 and "needs --i3d_weights" in err
    code, out, err = run(capsys, "evaluate", "--real", tmp_path / "nope", "--generated", fake)
    assert code == 1 and "--real: no such folder" in err


def test_one_flag_spelling_and_one_module_per_command():
    """Every flag of every sub-command is spelled with underscores; each command lives in its own module."""
    import importlib

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)
    for name, command in sub.choices.items():
        flags = [s for action in command._actions for s in action.option_strings if s.startswith("--")]
        assert flags and all("-" not in flag[2:] for flag in flags), (name, flags)
        module = importlib.import_module(f"hf_vidtok.commands.{name}")
        assert command.get_default("func") is module.run


def test_pack_a_folder_into_shards_push_and_stream_back(hub, tmp_path, capsys):
    """`hf-vidtok pack` writes webdataset shards + a card, pushes them as a Hub dataset, and the repo streams the
    clips the local folder gives; an unreadable file is listed as skipped; a used output folder is refused."""
    from hf_vidtok.data import load_video_dataset

    videos = tmp_path / "videos"
    for i, cls in enumerate(["run", "run", "walk", "walk"]):
        (videos / cls).mkdir(parents=True, exist_ok=True)
        write_video(videos / cls / f"v{i}.mp4", num_frames=12 + i, seed=i)
    (videos / "walk" / "broken.mp4").write_bytes(b"not a video")
    out = tmp_path / "shards"
    code, stdout, err = run(capsys, "pack", videos, "--output_dir", out, "--format", "webdataset",
                            "--max_videos_per_shard", "2", "--push_to_hub", "--repo_id", "user/packed-videos")
    assert code == 0, err
    result = last_json(stdout)
    train = result["splits"]["train"]
    assert train["videos"] == 4 and train["shards"] == 2 and train["codecs"] == {"h264": 4}
    assert train["frames"] == 12 + 13 + 14 + 15 and result["class_names"] == ["run", "walk"]
    assert result["skipped"] == 1 and list(result["skipped_files"]) == [str(videos / "walk" / "broken.mp4")]
    files = hub.files("user/packed-videos")
    assert sorted(files) == ["README.md", "data/train-00000-of-00002.tar", "data/train-00001-of-00002.tar"]
    card = files["README.md"].decode()
    assert "broken.mp4" in card and "h264 (4)" in card and "| train | 4 | 2 |" in card
    assert result["commit"] == hub.repos["user/packed-videos"].branches["main"]
    kw = dict(num_frames=8, resolution=16, streaming=True, seed=1)
    local = [(ex["key"], ex["label"], ex["start_frame"], np.asarray(ex["video"]).tobytes()) for ex in load_video_dataset(videos, **kw)]
    remote = [(ex["key"], ex["label"], ex["start_frame"], np.asarray(ex["video"]).tobytes())
              for ex in load_video_dataset("user/packed-videos", layout="webdataset", **kw)]
    assert remote == local and len(local) == 4
    code, _, err = run(capsys, "pack", videos, "--output_dir", out)
    assert code == 1 and "never overwrites" in err
    code, _, err = run(capsys, "pack", videos, "--output_dir", tmp_path / "other", "--push_to_hub")
    assert code == 1 and "--repo_id" in err


def test_every_flag_has_help_and_help_shows_defaults(capsys):
    """Every option of every sub-command has a help text; --help prints the default of every option that has one."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():
        for action in command._actions:
            if action.dest == "help":
                continue
            assert action.help, (name, action.dest)
        with pytest.raises(SystemExit):
            main([name, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        for action in command._actions:
            if action.option_strings and action.default not in (None, False, argparse.SUPPRESS) and action.dest != "help":
                assert f"(default: {action.default})" in text, (name, action.dest, action.default)


def test_outputs_that_are_inputs_are_refused_and_nothing_is_overwritten(models, tmp_path, capsys):
    video = tmp_path / "source.mp4"
    video.write_bytes(models["videos"][0].read_bytes())
    before = video.read_bytes()
    cases = [
        (["reconstruct", video, "--model", models["tokenizer"], "--output", video], "is one of the inputs"),
        (["reconstruct", video, "--model", models["tokenizer"], "--output", tmp_path / "x" / ".." / "source.mp4"],
         "is one of the inputs"),
        (["encode", video, "--model", models["tokenizer"], "--output", video], "is one of the inputs"),
        (["encode", models["videos"][1], video, "--model", models["tokenizer"], "--output", video],
         "is one of the inputs"),
        (["encode", video, "--model", models["tokenizer"], "--output", tmp_path / "tokens.avi"],
         "must end in .safetensors"),
        (["reconstruct", video, "--model", models["tokenizer"], "--output", tmp_path / "rec"], "must end in .mp4"),
        (["reconstruct", video, "--model", models["tokenizer"], "--output", tmp_path], "is a directory"),
        (["encode", tmp_path, "--model", models["tokenizer"], "--output", tmp_path / "t.safetensors"],
         "is a directory, expected a video file"),
        (["encode", video, "--model", models["tokenizer"], "--output", tmp_path / "t.safetensors", "--w_q", 1.0],
         "--w_q need an EVATok tokenizer with a router"),
        (["generate", "Biking", "--tokenizer", models["tokenizer"], "--generator", models["generator"],
          "--output_dir", video], "is a file, expected a folder"),
        (["convert", "--input", models["tokenizer"], "--output", models["tokenizer"]], "refusing to overwrite"),
    ]  # fmt: skip
    for argv, message in cases:
        code, out, err = run(capsys, *argv)
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert video.read_bytes() == before
    with pytest.raises(SystemExit) as exc:  # --fps 0 is a usage error, not silently the source's rate
        main(["reconstruct", str(video), "--model", str(models["tokenizer"]), "--output", str(tmp_path / "r.mp4"),
              "--fps", "0"])  # fmt: skip
    assert exc.value.code == 2 and "must be a positive number" in capsys.readouterr().err
    code, out, err = run(capsys, "reconstruct", video, "--model", models["tokenizer"], "--output", tmp_path / "r.mkv",
                         "--fps", 2.5, "--no_progress")  # fmt: skip
    assert code == 0, err
    assert last_json(out)["fps"] == 2.5


def test_skip_errors_lists_unreadable_videos(models, tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    good = models["videos"]
    argv = ["encode", good[0], broken, good[1], "--model", models["tokenizer"], "--output", tmp_path / "t.safetensors"]
    code, out, err = run(capsys, *argv)
    assert code == 1 and str(broken) in err and "--skip_errors" in err and not (tmp_path / "t.safetensors").exists()
    code, out, err = run(capsys, *argv, "--skip_errors")
    assert code == 0, err
    result = last_json(out)
    assert result["videos"] == 2 and result["num_skipped"] == 1 and result["skipped"][0]["path"] == str(broken)
    assert f"skipping {broken}" in err
    with safe_open(str(tmp_path / "t.safetensors"), "pt") as f:
        assert json.loads(f.metadata()["paths"]) == [str(good[0]), str(good[1])]
        assert f.get_tensor("video_index").unique().tolist() == [0, 1]
    # the tokens of the readable videos are those of a run without the broken one
    code, out, err = run(capsys, "encode", good[0], good[1], "--model", models["tokenizer"], "--output",
                         tmp_path / "u.safetensors")  # fmt: skip
    with safe_open(str(tmp_path / "t.safetensors"), "pt") as a, safe_open(str(tmp_path / "u.safetensors"), "pt") as b:
        assert torch.equal(a.get_tensor("indices"), b.get_tensor("indices"))
    code, out, err = run(capsys, "encode", broken, "--model", models["tokenizer"], "--output", tmp_path / "v.safetensors",
                         "--skip_errors")  # fmt: skip
    assert code == 1 and "none of the 1 videos could be read" in err


def test_pipeline_command_writes_a_loadable_pipeline_folder(models, larp_fixture_dir, tmp_path, capsys):
    from hf_vidtok.pipelines import ClassToVideoPipeline, FramePredictionPipeline

    code, out, err = run(capsys, "pipeline", "--tokenizer", models["tokenizer"], "--generator", models["generator"],
                         "--output", tmp_path / "pipe")  # fmt: skip
    assert code == 0, err
    assert last_json(out)["pipeline"] == "ClassToVideoPipeline"
    assert ModelCard.load(tmp_path / "pipe" / "README.md").data.library_name == "hf_vidtok"
    pipe = ClassToVideoPipeline.from_pretrained(tmp_path / "pipe")
    direct = ClassToVideoPipeline(tokenizer=tiny_tokenizer(seed=11), generator=tiny_generator(seed=11))
    a = pipe("Biking", generator=torch.Generator().manual_seed(0)).frames
    b = direct("Biking", generator=torch.Generator().manual_seed(0)).frames
    assert np.array_equal(a, b)
    code, out, err = run(capsys, "generate", "Biking", "--model", tmp_path / "pipe", "--output_dir", tmp_path / "v",
                         "--no_progress")  # fmt: skip
    assert code == 0, err
    # official exports as the parts: converted exactly (frame-prediction generator -> FramePredictionPipeline)
    code, out, err = run(capsys, "pipeline", "--tokenizer", larp_fixture_dir, "--generator", larp_fixture_dir / "ar_fp",
                         "--output", tmp_path / "official")  # fmt: skip
    assert code == 0, err
    official = FramePredictionPipeline.from_pretrained(tmp_path / "official")
    from hf_vidtok.models.larp.convert_larp_original_to_hf import load_original_model

    reference = load_original_model(str(larp_fixture_dir)).state_dict()
    assert all(torch.equal(official.tokenizer.state_dict()[k], v) for k, v in reference.items())
    # nothing else is overwritten
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    for output, message in ((tmp_path / "mine", "not a pipeline folder"), (models["tokenizer"], "one of the input models")):
        code, out, err = run(capsys, "pipeline", "--tokenizer", models["tokenizer"], "--generator", models["generator"],
                             "--output", output)  # fmt: skip
        assert code == 1 and message in err, err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    code, out, err = run(capsys, "pipeline", "--tokenizer", larp_fixture_dir / "ar", "--generator", models["generator"],
                         "--output", tmp_path / "x")  # fmt: skip
    assert code == 1 and "official LARP AR export, expected a tokenizer" in err
