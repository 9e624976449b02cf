"""A tokenizer that ships its router (stage 4): encode picks assignments itself, budgets pass through, an explicit
assignment wins, and the router survives save_pretrained / from_pretrained / AutoModel (tiny sizes, CPU)."""

import pytest
import torch
from transformers import AutoModel

from hf_vidtok import EvatokRouter, EvatokRouterConfig, EvatokTokenizer, EvatokTokenizerConfig
from hf_vidtok.models.evatok.modeling_evatok_router import attach_router, build_tokenizer_router

LEVELS = (1, 2, 8)
TOKENIZER = dict(
    image_size=(16, 20), num_frames=6, patch_size=4, temporal_patch_size=2, token_levels=LEVELS, hidden_size=24,
    num_attention_heads=3, encoder_layers=1, decoder_layers=1, codebook_size=37, code_dim=5, mlp_ratio=2.0,
)
ROUTER = dict(token_levels=LEVELS, num_blocks=3, image_size=16, num_frames=6, patch_size=8, temporal_patch_size=2,
              hidden_size=24, num_attention_heads=3, num_hidden_layers=1, head_type="quality")


@pytest.fixture(scope="module")
def tokenizer():
    torch.manual_seed(0)
    tok = EvatokTokenizer(EvatokTokenizerConfig(**TOKENIZER)).eval()
    router = EvatokRouter(EvatokRouterConfig(**ROUTER)).eval()
    torch.nn.init.normal_(router.head.weight, std=1.0)  # varied choices per clip
    return attach_router(tok, router)


def clips(b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, 6, 16, 20, generator=g)


def test_encode_uses_the_router(tokenizer):
    x = clips()
    chosen = tokenizer.router.select(x)
    out = tokenizer.encode(x)
    assert torch.equal(out.token_counts.cpu(), chosen)
    assert torch.equal(out.attention_mask.sum(1).cpu(), chosen.sum(1))
    assert not any(p.requires_grad for p in tokenizer.router.parameters())  # frozen inside the tokenizer


def test_budgets_pass_through_and_assignment_wins(tokenizer):
    x = clips(6, seed=1)
    capped = tokenizer.encode(x, max_tokens=5).token_counts
    assert (capped.sum(1) <= 5).all()
    assert torch.equal(capped.cpu(), tokenizer.router.select(x, max_tokens=5))
    mean = tokenizer.encode(x, target_mean_tokens=6.0).token_counts.sum(1).float().mean()
    assert mean <= 6.0
    assert (tokenizer.encode(x, allowed_prefix=[8]).token_counts[:, 0] == 8).all()
    assert torch.equal(tokenizer.encode(x, w_q=2.0).token_counts.cpu(), tokenizer.router.select(x, w_q=2.0))
    explicit = torch.tensor([[1, 2, 8]] * 6)
    assert torch.equal(tokenizer.encode(x, assignment=explicit).token_counts.cpu(), explicit)
    with pytest.raises(ValueError, match="either `assignment` or router selection"):
        tokenizer.encode(x, assignment=explicit, max_tokens=5)
    with pytest.raises(ValueError, match="below the minimum possible length"):
        tokenizer.encode(x, max_tokens=2)
    with pytest.raises(TypeError, match="unexpected selection arguments"):
        tokenizer.encode(x, budget=5)


def test_tokenizer_without_router():
    torch.manual_seed(0)
    tok = EvatokTokenizer(EvatokTokenizerConfig(**TOKENIZER)).eval()
    assert tok.router is None
    x = clips(2)
    assert torch.equal(tok.encode(x).token_counts.cpu(), torch.tensor([tok.config.default_assignment] * 2))
    with pytest.raises(ValueError, match="need a tokenizer with a router"):
        tok.encode(x, max_tokens=10)
    with pytest.raises(ValueError, match="levels"):
        attach_router(tok, EvatokRouter(EvatokRouterConfig(**{**ROUTER, "token_levels": (1, 2, 4)})))
    bad = EvatokTokenizerConfig(**TOKENIZER)
    bad.router_config = EvatokRouterConfig(**{**ROUTER, "num_blocks": 2}).to_dict()
    with pytest.raises(ValueError, match="blocks"):
        build_tokenizer_router(bad)


def test_save_load_round_trip(tokenizer, tmp_path):
    x = clips(3, seed=2)
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, EvatokTokenizer) and isinstance(loaded.router, EvatokRouter)
    assert loaded.config.router_config["model_type"] == "evatok_router"
    for name, value in tokenizer.router.state_dict().items():
        assert torch.equal(loaded.router.state_dict()[name], value), name
    a, b = tokenizer.encode(x, target_mean_tokens=7.0), loaded.encode(x, target_mean_tokens=7.0)
    assert torch.equal(a.token_counts, b.token_counts) and torch.equal(a.indices, b.indices)


def test_cli_encode_and_reconstruct_with_budgets(tokenizer, tmp_path, capsys):
    import json

    import numpy as np

    from hf_vidtok.commands.main import main
    from hf_vidtok.pipelines.video_export import export_to_video

    folder = tmp_path / "tok"
    tokenizer.save_pretrained(folder)
    rng = np.random.default_rng(0)
    video = export_to_video(rng.integers(0, 255, (14, 32, 40, 3), dtype=np.uint8), str(tmp_path / "v.mp4"), fps=7)

    def run(*argv):
        assert main(list(argv)) == 0
        return json.loads(capsys.readouterr().out)

    common = ("--model", str(folder), "--device", "cpu", "--no_progress")
    free = run("encode", video, "--output", str(tmp_path / "t.safetensors"), *common)
    assert free["clips"] == 3 and len(free["assignments"]) == 3  # 14 frames -> clips of 6 (last one padded)
    assert free["tokens"] == sum(map(sum, free["assignments"]))
    capped = run("encode", video, "--output", str(tmp_path / "c.safetensors"), "--max_tokens", "5", *common)
    assert all(sum(a) <= 5 for a in capped["assignments"])
    prefixed = run("reconstruct", video, "--output", str(tmp_path / "r.mp4"), "--allowed_prefix", "8",
                   "--target_mean_tokens", "13", *common)
    assert all(a[0] == 8 for a in prefixed["assignments"]) and prefixed["tokens"] <= 13 * 3
    assert prefixed["tokens_per_second"] == pytest.approx(prefixed["tokens"] / (14 / 7), rel=1e-3)
    assert main(["encode", video, "--output", str(tmp_path / "x.safetensors"), "--max_tokens", "2", *common]) == 1
    assert "minimum possible length" in capsys.readouterr().err


def upload(model, repo_id, folder):
    """``save_pretrained`` + ``HfApi.upload_folder`` (what a user publishing a trained folder does)."""
    from huggingface_hub import HfApi

    model.save_pretrained(folder)
    api = HfApi()
    api.create_repo(repo_id, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id)


def test_hub_round_trip(tokenizer, tmp_path):
    """The tokenizer with its router, and a router alone, through the fake Hub server of tests/hub."""
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "hub"))
    from fake_hub import FakeHub, hub_environment

    x = clips(3, seed=4)
    ref = tokenizer.encode(x, max_tokens=9)
    hub = FakeHub()
    try:
        with hub_environment(hub, tmp_path / "hf_cache"):
            upload(tokenizer, "user/tiny-evatok-with-router", tmp_path / "tok")
            assert {"config.json", "model.safetensors"} <= set(hub.files("user/tiny-evatok-with-router"))
            remote = AutoModel.from_pretrained("user/tiny-evatok-with-router").eval()
            assert isinstance(remote.router, EvatokRouter)
            out = remote.encode(x, max_tokens=9)
            assert torch.equal(out.token_counts, ref.token_counts) and torch.equal(out.indices, ref.indices)
            upload(tokenizer.router, "user/tiny-router", tmp_path / "router")
            router = AutoModel.from_pretrained("user/tiny-router").eval()
            assert isinstance(router, EvatokRouter)
            assert torch.equal(router.select(x, target_mean_tokens=7.0), tokenizer.router.select(x, target_mean_tokens=7.0))
    finally:
        hub.close()


def test_encode_with_the_router_compiles_without_graph_breaks(tokenizer):
    """The router's choice is a tensor: under torch.compile it is never read on the host, so the tokens are padded
    to the static ``max_tokens`` (eager pads tightly; the same tokens otherwise, bitwise with the eager backend)."""
    torch._dynamo.reset()
    x = clips()
    with torch.no_grad():
        out = torch.compile(tokenizer.encode, fullgraph=True, backend="eager")(x)
        ref = tokenizer.encode(x, max_length=tokenizer.config.max_tokens)
    assert out.indices.shape == (4, tokenizer.config.max_tokens)
    for name in ("indices", "token_counts", "attention_mask", "quantized"):
        assert torch.equal(getattr(out, name), getattr(ref, name)), name
