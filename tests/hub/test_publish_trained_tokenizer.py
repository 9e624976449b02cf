"""A tokenizer trained by training/train_tokenizer.py, pushed with --push_to_hub to the fake Hub, loads
back by repo id and its card shows the measured metrics."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from hubtest_utils import TOKENIZER_KWARGS

pytest.importorskip("accelerate")
av = pytest.importorskip("av")
yaml = pytest.importorskip("yaml")

SCRIPT = Path(__file__).resolve().parents[2] / "training" / "train_tokenizer.py"
TINY = dict(TOKENIZER_KWARGS)


def _video(path, phase):
    path.parent.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:16, 0:16].astype(np.float32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width = stream.height = 16
        stream.pix_fmt = "yuv420p"
        for t in range(6):
            rgb = np.stack([0.5 + 0.4 * np.sin(0.3 * x + 0.2 * y + 0.5 * t + phase + 2 * c) for c in range(3)], -1)
            for packet in stream.encode(av.VideoFrame.from_ndarray((rgb * 255).astype(np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_train_then_push_to_hub_then_load_by_repo_id(hub, tmp_path):
    if not SCRIPT.is_file():
        pytest.fail(f"{SCRIPT} is missing")
    for i in range(4):
        _video(tmp_path / "videos" / f"class{i % 2}" / f"v{i}.mp4", phase=i)
    recipe = dict(
        model_config=TINY, train_data_dir=str(tmp_path / "videos"), validation_data_dir=str(tmp_path / "videos"),
        dataset_layout="folder", validation_split="train", train_batch_size=2, max_train_steps=1, learning_rate=1e-3,
        lr_warmup_steps=0, perceptual_weight=0.0, disc_weight=0.0, disc_hidden_size=16, disc_num_heads=2, disc_depth=1,
        num_validation_clips=2, checkpointing_steps=1, validation_steps=1, logging_steps=1,
        output_dir=str(tmp_path / "out"), seed=0, push_to_hub=True, hub_model_id="user/trained-tokenizer",
    )  # fmt: skip
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    spec = importlib.util.spec_from_file_location("hub_test_train_tokenizer", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    try:
        results = module.main(["--config", str(tmp_path / "recipe.yaml")])
    finally:
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state(True)
        sys.modules.pop(spec.name, None)

    files = hub.files("user/trained-tokenizer")
    assert {"config.json", "model.safetensors", "README.md", "eval_results.json"} <= set(files)
    assert not [n for n in files if n.startswith("checkpoint-") or n.endswith((".bin", ".pkl", ".pt", ".pth"))]
    card = ModelCard(files["README.md"].decode())
    assert card.data.library_name == "hf_vidtok"
    shown = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert shown["PSNR"] == pytest.approx(results["psnr"], abs=1e-4)
    assert shown["SSIM"] == pytest.approx(results["ssim"], abs=1e-4)
    assert f"| PSNR before training | {round(results['initial_psnr'], 4):.4f}".rstrip("0").rstrip(".") in card.text
    assert "LarpTokenizer.from_pretrained('user/trained-tokenizer')" in card.text
    assert json.loads(files["eval_results.json"])["step"] == 1

    from hf_vidtok import LarpTokenizer

    loaded = LarpTokenizer.from_pretrained("user/trained-tokenizer")
    saved = LarpTokenizer.from_pretrained(tmp_path / "out")
    for key, value in saved.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
