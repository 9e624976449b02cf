"""hf_vidtok.training.validation: reconstruction metrics, codebook usage, side-by-side video."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hf_vidtok.training import codebook_usage, evaluate_reconstruction, save_side_by_side_video


def _psnr(pred, target):
    from hf_vidtok.metrics import psnr

    return psnr(pred.clamp(0, 1), target, reduction="none").float()


class _HalfModel(nn.Module):
    """encode/decode stand-in whose reconstruction is half the input."""

    def __init__(self):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(()))

    def encode(self, x):
        return type("E", (), {"quantized": x, "indices": None})()

    def decode_latents(self, q):
        return q * 0.5 + self.p


def test_evaluate_reconstruction_and_video(tmp_path):
    torch.manual_seed(0)
    clips = [torch.rand(2, 3, 4, 8, 8), torch.rand(1, 3, 4, 8, 8)]
    model = _HalfModel().train()
    res, pair = evaluate_reconstruction(model, clips, metrics={"psnr": _psnr}, keep_first=2)
    expected = torch.cat([_psnr(c * 0.5, c) for c in clips]).sum().item()  # sums, reduced over processes later
    assert res["psnr"] == pytest.approx(expected, abs=1e-4) and res["num_clips"] == 3
    assert model.training  # restored
    assert pair[0].shape == (2, 3, 4, 8, 8)
    av = pytest.importorskip("av")
    path = save_side_by_side_video(pair[0], pair[1], str(tmp_path / "v" / "recon.mp4"), scale=2)
    with av.open(path) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 4 and frames[0].shape == (32, 32, 3)
    with pytest.raises(ValueError, match="empty"):
        evaluate_reconstruction(model, [], metrics={"psnr": _psnr})


class _CodeModel(_HalfModel):
    """Tokens: code 0 for the first clip's tokens, 1..3 for the second's, -1 padding (variable length)."""

    def encode(self, x):
        ids = torch.tensor([[0, 0, 0, -1], [1, 2, 3, 3]])[: x.shape[0]]
        return type("E", (), {"quantized": x, "indices": ids})()


def test_codebook_usage_counts_codes_and_ignores_padding():
    clips = [torch.rand(2, 3, 4, 8, 8)]
    res, _ = evaluate_reconstruction(_CodeModel(), clips, metrics={}, codebook_size=8)
    assert res["code_counts"].tolist() == [3, 1, 1, 2, 0, 0, 0, 0]
    usage = codebook_usage(res["code_counts"])
    assert usage["codebook_usage"] == pytest.approx(4 / 8)
    p = torch.tensor([3, 1, 1, 2], dtype=torch.float64) / 7
    assert usage["codebook_perplexity"] == pytest.approx(torch.exp(-(p * p.log()).sum()).item())
    collapsed = codebook_usage(torch.tensor([0, 9, 0, 0]))
    assert collapsed == {"codebook_usage": 0.25, "codebook_perplexity": pytest.approx(1.0)}
