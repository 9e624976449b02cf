import json
import math

import numpy as np
import pytest
import torch

pytest.importorskip("av", reason="reading videos needs PyAV (pip install hf_vidtok[train])")

from hf_vidtok.metrics import FVD, LPIPS, InceptionI3D, psnr, ssim  # noqa: E402
from hf_vidtok.commands import main  # noqa: E402
from hf_vidtok.metrics.evaluate_folders import evaluate_folders, list_video_files, load_clip  # noqa: E402


def _write_video(path, frames: np.ndarray, fps=8):
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    (root / "real" / "sub").mkdir(parents=True)
    (root / "gen" / "sub").mkdir(parents=True)
    for i, name in enumerate(["a", "b", "sub/c"]):
        base = np.kron(rng.integers(0, 256, size=(10, 4, 4, 3)), np.ones((1, 8, 8, 1))).astype(np.uint8)
        noisy = np.clip(base.astype(int) + rng.integers(-20, 21, size=base.shape), 0, 255).astype(np.uint8)
        _write_video(root / "real" / f"{name}.mp4", base)
        _write_video(root / "gen" / f"{name}.avi" if i == 0 else root / "gen" / f"{name}.mp4", noisy)
    _write_video(root / "gen" / "extra.mp4", base)  # unpaired: used by FVD only
    (root / "gen" / "broken.mp4").write_bytes(b"not a video")
    (root / "gen" / "notes.txt").write_text("ignored")
    return root


@pytest.fixture(scope="module")
def tiny_fvd():
    g = torch.Generator().manual_seed(0)
    i3d = InceptionI3D(width_divisor=32)
    for k, t in i3d.state_dict().items():
        if k.endswith("conv3d.weight"):
            t.copy_(torch.randn(t.shape, generator=g) * math.sqrt(2.0 / t[0].numel()))
    return FVD(i3d)


def test_listing_pairs_by_name_without_extension(folders):
    gen = list_video_files(folders / "gen")
    assert sorted(gen) == ["a", "b", "broken", "extra", "sub/c"]
    assert gen["a"].endswith("a.avi")
    with pytest.raises(FileNotFoundError):
        list_video_files(folders / "missing")


def test_folder_metrics_equal_direct_computation(folders, tiny_fvd, tmp_path, capsys):
    torch.manual_seed(0)
    lpips = LPIPS()
    res = evaluate_folders(folders / "real", folders / "gen", num_frames=10, batch_size=2, lpips=lpips, fvd=tiny_fvd)
    names = ["a", "b", "sub/c"]
    real_files, gen_files = list_video_files(folders / "real"), list_video_files(folders / "gen")
    r = torch.stack([load_clip(real_files[n], 10) for n in names])
    g = torch.stack([load_clip(gen_files[n], 10) for n in names])
    assert r.shape == (3, 3, 10, 32, 32)
    assert res["num_pairs"] == 3 and res["num_real"] == 3 and res["num_generated"] == 5
    assert res["skipped"] == [gen_files["broken"]]
    assert res["psnr"] == pytest.approx(psnr(g, r).item(), rel=1e-9)
    assert res["ssim"] == pytest.approx(ssim(g, r).item(), rel=1e-6)
    assert res["lpips"] == pytest.approx(lpips(g, r).mean().item(), rel=1e-5)
    fvd = FVD(tiny_fvd.i3d)
    fvd.update(r, real=True)
    fvd.update(torch.cat([g, load_clip(gen_files["extra"], 10)[None]]), real=False)
    assert res["fvd"] == pytest.approx(fvd.compute(), rel=1e-5)

    # the command line: psnr + ssim + fvd from local weight files, JSON output, resizing
    tiny_fvd.i3d.save_pretrained(tmp_path / "i3d")
    out_json = tmp_path / "res.json"
    assert main([
        "evaluate", "--real", str(folders / "real"), "--generated", str(folders / "gen"), "--metrics", "psnr", "ssim",
        "fvd", "--num_frames", "10", "--resolution", "16", "--i3d_weights", str(tmp_path / "i3d"),
        "--output", str(out_json),
    ]) == 0  # fmt: skip
    cli = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert json.loads(out_json.read_text()) == cli
    assert set(cli) >= {"psnr", "ssim", "fvd"} and "lpips" not in cli
    assert cli["psnr"] != pytest.approx(res["psnr"])  # 16 px clips, not 32 px


def test_errors(folders):
    with pytest.raises(ValueError, match="needs I3D weights"):
        evaluate_folders(folders / "real", folders / "gen", metrics=["fvd"])
    with pytest.raises(ValueError, match="subset"):
        evaluate_folders(folders / "real", folders / "gen", metrics=["fid"])
    assert main(["evaluate", "--real", str(folders / "real"), "--generated", str(folders / "gen"), "--metrics", "lpips"]) == 1
