"""Prefix-tree scoring == brute force, node counts, with a block-causal toy and the real tiny EvatokTokenizer."""

from types import SimpleNamespace

import pytest
import torch

from hf_vidtok.evatok.assignments import candidate_assignments, num_prefix_nodes
from hf_vidtok.evatok.scoring import (
    AssignmentScores,
    BlockQualityMetric,
    score_assignments,
    score_assignments_brute_force,
)
from hf_vidtok.metrics import LPIPS, ssim


class ToyBlockCausal(torch.nn.Module):
    """A block-causal stand-in with the prefix API: block t's output depends on (x_<=t, k_<=t) only."""

    def __init__(self, levels, num_blocks, channels=3, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.config = SimpleNamespace(token_levels=tuple(levels), num_blocks=num_blocks)
        self.mix = torch.nn.Parameter(torch.randn(channels, channels, generator=g, dtype=torch.float64))
        self.level_vec = torch.nn.Parameter(torch.randn(len(levels), channels, generator=g, dtype=torch.float64))
        self.steps = 0
        self.eval()

    def _block(self, x, h, count):
        level = self.config.token_levels.index(count)
        h = torch.tanh(0.5 * h + x.mean(dim=(2, 3, 4)) @ self.mix + self.level_vec[level])
        recon = x * (1 - 1 / (count + 1)) + 0.2 * h[:, :, None, None, None] * torch.cos(x * count)
        return recon, h

    def init_prefix_state(self, x):
        return (0, x.new_zeros(x.shape[:2]), x)

    def step_block(self, state, count):
        self.steps += 1
        t, h, x = state
        f = x.shape[2] // self.config.num_blocks
        recon, h = self._block(x[:, :, t * f : (t + 1) * f], h, count)
        return SimpleNamespace(reconstruction=recon), (t + 1, h, x)

    def forward(self, x, assignment):
        f = x.shape[2] // self.config.num_blocks
        h, out = x.new_zeros(x.shape[:2]), []
        for t, k in enumerate(assignment):
            r, h = self._block(x[:, :, t * f : (t + 1) * f], h, k)
            out.append(r)
        return SimpleNamespace(reconstruction=torch.cat(out, dim=2))


class TinyVGGFeatures(torch.nn.Module):
    """Cheap stand-in for LPIPS's VGG16 trunk: five feature maps with VGG's channel counts."""

    def __init__(self):
        super().__init__()
        self.convs = torch.nn.ModuleList(torch.nn.Conv2d(3, c, 3, padding=1) for c in (64, 128, 256, 512, 512))

    def forward(self, x):
        feats = []
        for i, conv in enumerate(self.convs):
            feats.append(torch.relu(conv(torch.nn.functional.avg_pool2d(x, 2**i) if i else x)))
        return feats


def _lpips64(seed=0):
    """The package's LPIPS with random heads and a tiny random trunk (nothing is downloaded), float64."""
    torch.manual_seed(seed)
    lp = LPIPS()
    lp.vgg = TinyVGGFeatures()
    for lin in lp.lins:
        lin.weight.data.uniform_(0, 1)
    return lp.double().requires_grad_(False)


@pytest.mark.parametrize("levels,num_blocks", [((3, 5, 7), 3), ((2, 9), 4), ((1, 2, 4, 6, 11), 2), ((4,), 3)])
def test_toy_tree_equals_brute_force(levels, num_blocks):
    toy = ToyBlockCausal(levels, num_blocks, seed=len(levels))
    x = torch.rand(2, 3, 2 * num_blocks, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    tree = score_assignments(toy, x)
    assert toy.steps == num_prefix_nodes(levels, num_blocks) == sum(len(levels) ** t for t in range(1, num_blocks + 1))
    brute = score_assignments_brute_force(toy, x)
    a = len(levels) ** num_blocks
    assert tree.block_values.shape == brute.block_values.shape == (2, a, num_blocks, 2)
    torch.testing.assert_close(tree.block_values, brute.block_values, rtol=0, atol=1e-13)
    # clip scores from the explicit definition for one assignment
    counts = candidate_assignments(levels, num_blocks)[a // 2].tolist()
    with torch.no_grad():
        recon = toy(x, counts).reconstruction.clamp(0, 1)
    mse = (recon - x).pow(2).mean(dim=(1, 2, 3, 4))
    torch.testing.assert_close(tree.mse[:, a // 2], mse, rtol=0, atol=1e-14)
    torch.testing.assert_close(tree.ssim[:, a // 2], ssim(recon, x, reduction="none"), rtol=0, atol=1e-13)
    torch.testing.assert_close(tree.psnr, -10 * torch.log10(tree.mse))
    assert tree.lpips is None and tree.metric_names == ("mse", "ssim")


def test_toy_with_lpips_and_eval_mode_check():
    toy = ToyBlockCausal((2, 3), 2)
    x = torch.rand(3, 3, 4, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    lp = _lpips64()
    tree = score_assignments(toy, x, lpips=lp)
    brute = score_assignments_brute_force(toy, x, lpips=lp)
    torch.testing.assert_close(tree.lpips, brute.lpips, rtol=0, atol=1e-12)
    with torch.no_grad():
        recon = toy(x, [3, 2]).reconstruction.clamp(0, 1)
        torch.testing.assert_close(tree.lpips[:, 2], lp(recon, x), rtol=0, atol=1e-12)  # class 2 = (3, 2)
    assert tree.lpips.std() > 0
    toy.train()
    with pytest.raises(ValueError, match="eval"):
        score_assignments(toy, x)
    toy.eval()
    with pytest.raises(ValueError, match="subset"):
        score_assignments(toy, x, levels=(2, 5))
    with pytest.raises(ValueError, match="frames"):
        score_assignments(toy, x[:, :, :3])
    with pytest.raises(TypeError, match="lpips"):
        BlockQualityMetric(lpips="vgg")


# ----------------------------------------------------------------------------- the real tokenizer
evatok = pytest.importorskip("hf_vidtok.models.evatok")


def _tiny_tokenizer(levels, seed, num_frames=6, dtype=torch.float64):
    torch.manual_seed(seed)
    repeat = dict(decoder_query_init="pyramid_cell", decoder_carry="output") if levels[0] == 0 else {}
    config = evatok.EvatokTokenizerConfig(
        image_size=16, num_frames=num_frames, patch_size=4, temporal_patch_size=2, token_levels=levels,
        hidden_size=24, num_attention_heads=2, encoder_layers=2, decoder_layers=2, codebook_size=37, code_dim=4,
        align_decoder_layer=1, **repeat,
    )
    return evatok.EvatokTokenizer(config).to(dtype).eval()


class CountingTokenizer:
    """Delegates to a tokenizer and counts step_block calls."""

    def __init__(self, model):
        self.model, self.steps = model, 0
        self.config, self.training = model.config, model.training

    def init_prefix_state(self, x):
        return self.model.init_prefix_state(x)

    def step_block(self, state, count):
        self.steps += 1
        return self.model.step_block(state, count)


@pytest.mark.parametrize("levels,seed", [((2, 4, 8), 0), ((1, 8, 16), 1), ((2, 32), 2), ((0, 2, 8), 3)])
def test_evatok_tree_equals_brute_force_fp64(levels, seed):
    model = _tiny_tokenizer(levels, seed)
    x = torch.rand(2, 3, 6, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    counting = CountingTokenizer(model)
    lp = _lpips64(seed) if seed == 0 else None
    tree = score_assignments(counting, x, lpips=lp)
    assert counting.steps == num_prefix_nodes(levels, 3)
    brute = score_assignments_brute_force(model, x, lpips=lp)
    assert isinstance(tree, AssignmentScores) and tree.block_values.shape == (2, len(levels) ** 3, 3, 3 if lp else 2)
    torch.testing.assert_close(tree.block_values, brute.block_values, rtol=0, atol=1e-12)
    assert tree.mse.std() > 0  # assignments do differ


def test_evatok_level_subset_fp32():
    model = _tiny_tokenizer((2, 4, 8, 16), 3, num_frames=4, dtype=torch.float32)
    x = torch.rand(3, 3, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    tree = score_assignments(model, x, levels=(4, 16))
    brute = score_assignments_brute_force(model, x, levels=(4, 16))
    assert tree.block_values.shape == (3, 4, 2, 2)
    torch.testing.assert_close(tree.block_values, brute.block_values, rtol=1e-4, atol=1e-5)
