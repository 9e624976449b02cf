"""Model cards and publishing of the EVATok tokenizer and router (tiny random models, the fake Hub)."""

import json
import re
import shlex

import pytest
import torch
from hubtest_utils import assert_same_weights, extract_python_snippet, tiny_evatok_router, tiny_evatok_tokenizer
from huggingface_hub import ModelCard

from hf_vidtok import EvatokRouter, EvatokTokenizer
from hf_vidtok.hub import LOCAL_MODEL_PATH, create_model_card, describe, push_to_hub, save_pretrained_with_card

# what training/train_tokenizer.py's write_eval_results writes for an EVATok tokenizer (psnr/ssim: default assignment)
TOKENIZER_EVAL = {
    "step": 1600,
    "psnr": 24.5,
    "ssim": 0.7,
    "psnr_uniform_2": 19.25,
    "psnr_uniform_4": 21.5,
    "psnr_uniform_8": 24.5,
    "ssim_uniform_2": 0.5,
    "ssim_uniform_4": 0.6,
    "ssim_uniform_8": 0.7,
    "codebook_usage": 0.8,
    "initial_psnr": 10.0,
    "initial_ssim": 0.1,
    "psnr_gain": 14.5,
    "num_validation_clips": 32,
    "validation_data": "held-out clips",
    "resolution": 16,
    "num_frames": 4,
    "history": [{"step": 800, "psnr": 20.0}],
}
# what training/train_router.py's evaluate_router + main write to eval_results.json
ROUTER_EVAL = {
    "num_clips": 16,
    "head_type": "quality",
    "label_w_q": 1.2,
    "top1": 0.3125,
    "top5": 0.75,
    "reward_percentile": 0.9375,
    "best_uniform_percentile": 0.8125,
    "avg_tokens": 9.5,
    "label_avg_tokens": 10.25,
    "mean_lpips": 0.21875,
    "per_w_q": [{"w_q": 0.8, "avg_tokens": 6.5, "reward_percentile": 0.875}, {"w_q": 1.6, "avg_tokens": 13.0, "reward_percentile": 0.9}],
    "budgets": [{"requested": 8.0, "achieved": 7.75, "reward_percentile": 0.85}],
    "global_step": 200,
    "history": [{"step": 100, "top1": 0.1}],
    "score_table": "scores/val",
    "quality_cost_json": "quality_cost.json",
    "quality_cost_png": "quality_cost.png",
}


def _metrics(card):
    return {(r.metric_name, r.metric_type): r.metric_value for r in card.data.eval_results}


def _run_snippet(card, monkeypatch, folder, capsys):
    monkeypatch.chdir(folder)
    exec(compile(extract_python_snippet(str(card)), "<model card snippet>", "exec"), {"__name__": "__main__"})
    return capsys.readouterr().out


def test_evatok_tokenizer_card_facts_and_per_level_results(tmp_path):
    model = tiny_evatok_tokenizer()
    assert describe(model)["kind"] == "evatok_tokenizer" and describe(model)["router"] is None
    card = create_model_card(model, repo_id="user/tiny-evatok", eval_results=TOKENIZER_EVAL, training_config={"seed": 5})
    assert {"hf_vidtok", "evatok", "video-tokenizer", "adaptive-length"} <= set(card.data.tags)
    assert "larp" not in card.data.tags
    assert _metrics(card) == {
        ("PSNR", "psnr"): 24.5,
        ("SSIM", "ssim"): 0.7,
        ("PSNR (uniform 2/block)", "psnr"): 19.25,
        ("PSNR (uniform 4/block)", "psnr"): 21.5,
        ("PSNR (uniform 8/block)", "psnr"): 24.5,
        ("SSIM (uniform 2/block)", "ssim"): 0.5,
        ("SSIM (uniform 4/block)", "ssim"): 0.6,
        ("SSIM (uniform 8/block)", "ssim"): 0.7,
    }
    assert [r.metric_name for r in card.data.eval_results][:4] == [
        "PSNR", "SSIM", "PSNR (uniform 2/block)", "PSNR (uniform 4/block)"
    ]  # fmt: skip
    assert card.data.eval_results[0].task_type == "video-reconstruction"
    text = str(card)
    for fact in (
        "temporal blocks: 2 (2 frames each, causal)",
        "token levels per block: 2, 4, 8 (9 candidate assignments)",
        "tokens per clip: 4 (min) to 16 (max); default (uniform) assignment 8, 8 = 16 tokens",
        "input clips: 4 frames x 16 x 16, 3 channels",
        "codebook: 37 codes of dimension 4",
        "router: none",
        "It ships no router",
        "| PSNR (uniform 2/block) | 19.25 |",
        "| PSNR before training | 10 |",
        "- videos: 32",
        "EvatokTokenizer.from_pretrained('user/tiny-evatok')",
        "tokenizer.decode(indices, token_counts)",
        "| seed | 5 |",
    ):
        assert fact in text, fact
    assert f"{sum(p.numel() for p in model.parameters()):,}" in text
    assert "target_mean_tokens" not in text  # no router: no budget to ask for
    card.save(tmp_path / "README.md")
    assert _metrics(ModelCard.load(tmp_path / "README.md")) == _metrics(card)


def test_evatok_tokenizer_with_router_card_and_quoted_shell(tmp_path):
    tokenizer = tiny_evatok_tokenizer(router=True)
    info = describe(tokenizer)
    assert info["router"].head_type == "quality" and info["router"].token_levels == [2, 4, 8]
    folder = tmp_path / "it's evatok"
    tokenizer.save_pretrained(folder)
    assert describe(folder)["router"].quality_metric == "lpips"  # read back from the nested router_config
    text = str(create_model_card(folder, repo_id=str(folder)))
    assert "It ships a quality-head router" in text and "default preference w_q = 1.2, w_l = 0.8" in text
    assert "router: quality head, 1 layers, width 32, input 4 x 16 x 16, quality metric lpips, default w_q 1.2" in text
    assert "tokenizer.encode(video, target_mean_tokens=10)" in text
    shell = re.search(r"```bash\n(.*?)```", text, re.DOTALL).group(1).strip().splitlines()
    assert [shlex.split(line) for line in shell] == [
        ["hf-vidtok", "encode", "--model", str(folder), "my_video.mp4", "--output", "tokens.safetensors",
         "--target_mean_tokens", "10"],
        ["hf-vidtok", "reconstruct", "--model", str(folder), "my_video.mp4", "--output", "reconstruction.mp4"],
    ]  # fmt: skip


@pytest.mark.parametrize("with_router", [False, True])
def test_evatok_tokenizer_snippet_runs_from_the_model_folder(tmp_path, monkeypatch, capsys, with_router):
    folder = tmp_path / "my evatok"
    tokenizer = tiny_evatok_tokenizer(router=with_router)
    card = save_pretrained_with_card(tokenizer, folder, eval_results=TOKENIZER_EVAL)
    text = (folder / "README.md").read_text()
    assert f"EvatokTokenizer.from_pretrained({LOCAL_MODEL_PATH!r})" in text
    assert json.loads((folder / "eval_results.json").read_text())["psnr_uniform_2"] == 19.25
    out = _run_snippet(card, monkeypatch, folder, capsys).strip().splitlines()
    totals = json.loads(out[-1].split("] ")[0] + "]")
    assert out[-1].endswith("torch.Size([2, 3, 4, 16, 16])")
    if with_router:  # the router's own choice, then the batch budget of 10 tokens on average
        assert len(json.loads(out[0])) == 2 and sum(totals) / 2 <= 10
    else:  # the last encode of the snippet: every block at the lowest level
        assert totals == [4, 4]


@pytest.mark.parametrize("head_type", ["quality", "classifier"])
def test_evatok_router_card_facts_results_and_snippet(tmp_path, monkeypatch, capsys, head_type):
    router = tiny_evatok_router(head_type=head_type)
    assert describe(router)["kind"] == "evatok_router"
    folder = tmp_path / "router"
    results = dict(ROUTER_EVAL, head_type=head_type)
    card = save_pretrained_with_card(router, folder, eval_results=results, training_config={"learning_rate": 3e-4})
    assert {"hf_vidtok", "evatok", "router"} <= set(card.data.tags)
    assert _metrics(card) == {
        ("Top-1 accuracy", "accuracy"): 0.3125,
        ("Top-5 accuracy", "accuracy"): 0.75,
        ("Proxy-reward percentile", "reward_percentile"): 0.9375,
        ("Average tokens per clip", "avg_tokens"): 9.5,
        ("LPIPS at the router's choice", "lpips"): 0.2188,
    }
    assert card.data.eval_results[0].task_type == "video-classification"
    text = str(card)
    for fact in (
        f"head: {head_type} (9 outputs, one per candidate assignment)",
        "token levels per block: 2, 4, 8; temporal blocks: 2",
        "| best uniform assignment, proxy-reward percentile | 0.8125 |",
        "- router head: " + head_type,
        "- preference of the labels (w_q): 1.2",
        "- videos: 16",
        "- training step: 200",
        "| 0.8 | 6.5 | 87.50% |",
        "| 8.0 | 7.75 | 85.00% |",
        "| learning rate | 0.0003 |",
        f"EvatokRouter.from_pretrained({LOCAL_MODEL_PATH!r})",
        "router.select(video, target_mean_tokens=10)",
    ):
        assert fact in text, fact
    if head_type == "quality":
        assert "quality metric: lpips" in text and "default preference: w_q = 1.2" in text and "w_q=0.8" in text
    else:
        assert "labels computed at: w_q = 1.2" in text and "w_q=0.8" not in text
    out = _run_snippet(card, monkeypatch, folder, capsys).strip()
    counts, capped, budget = json.loads("[" + out.replace("] [", "], [") + "]")
    assert len(counts) == 2 and all(len(c) == 2 and set(c) <= {2, 4, 8} for c in counts)
    assert max(capped) <= 10 and sum(budget) / 2 <= 10


def test_push_evatok_tokenizer_with_router_and_router_round_trip(hub):
    tokenizer = tiny_evatok_tokenizer(seed=1, router=True)
    info = push_to_hub(tokenizer, "user/evatok-tok", eval_results=TOKENIZER_EVAL, commit_message="evatok")
    assert hub.repos["user/evatok-tok"].messages[info.oid] == "evatok"
    files = hub.files("user/evatok-tok")
    assert {"config.json", "model.safetensors", "README.md", "eval_results.json"} <= set(files)
    card = ModelCard(files["README.md"].decode())
    assert ("PSNR (uniform 8/block)", "psnr") in _metrics(card)
    assert "EvatokTokenizer.from_pretrained('user/evatok-tok')" in card.text and "It ships a quality-head router" in card.text
    loaded = EvatokTokenizer.from_pretrained("user/evatok-tok").eval()
    assert_same_weights(loaded, tokenizer)
    video = torch.rand(3, 3, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mine, theirs = tokenizer.encode(video), loaded.encode(video)
    assert torch.equal(mine.token_counts, theirs.token_counts) and torch.equal(mine.indices, theirs.indices)

    router = tiny_evatok_router(seed=2, head_type="classifier")
    push_to_hub(router, "user/evatok-router", eval_results=dict(ROUTER_EVAL, head_type="classifier"))
    card = ModelCard(hub.files("user/evatok-router")["README.md"].decode())
    assert _metrics(card)[("Top-1 accuracy", "accuracy")] == 0.3125
    loaded_router = EvatokRouter.from_pretrained("user/evatok-router").eval()
    assert_same_weights(loaded_router, router)
    assert torch.equal(loaded_router.select(video), router.select(video))


def test_cli_publish_evatok_folders(hub, tmp_path, capsys):
    from hf_vidtok.commands import main

    run_dir = tmp_path / "run"
    router = tiny_evatok_router(seed=3)
    router.save_pretrained(run_dir)
    (run_dir / "eval_results.json").write_text(json.dumps(ROUTER_EVAL))  # as train_router.py leaves it
    (run_dir / "training_config.json").write_text(json.dumps({"learning_rate": 1e-3, "hub_token": "hf_x"}))
    assert main(["publish", str(run_dir), "--repo_id", "user/cli-router", "--revision", "v1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["commit"] == hub.repos["user/cli-router"].branches["v1"]
    files = hub.files("user/cli-router", "v1")
    card = ModelCard(files["README.md"].decode())
    assert _metrics(card)[("Proxy-reward percentile", "reward_percentile")] == 0.9375
    assert "EvatokRouter.from_pretrained('user/cli-router')" in card.text and "| learning rate | 0.001 |" in card.text
    assert b"hf_x" not in files["README.md"]
    assert_same_weights(EvatokRouter.from_pretrained("user/cli-router", revision="v1"), router)

    tok_dir = tmp_path / "tok"
    tokenizer = tiny_evatok_tokenizer(seed=4)
    tokenizer.save_pretrained(tok_dir)
    (tok_dir / "eval_results.json").write_text(json.dumps(TOKENIZER_EVAL))
    assert main(["publish", str(tok_dir), "--repo_id", "user/cli-evatok"]) == 0
    card = ModelCard(hub.files("user/cli-evatok")["README.md"].decode())
    assert _metrics(card)[("SSIM (uniform 4/block)", "ssim")] == 0.6
    assert_same_weights(EvatokTokenizer.from_pretrained("user/cli-evatok"), tokenizer)
