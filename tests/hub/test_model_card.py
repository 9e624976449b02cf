import json

import pytest
import torch
from hubtest_utils import CLASS_NAMES, extract_python_snippet, tiny_generator, tiny_tokenizer
from huggingface_hub import ModelCard

from hf_vidtok.hub import AUTO_CARD_MARKER, create_model_card, describe, template_path

# the keys training/train_tokenizer.py writes (num_validation_clips, validation_data) and hf-vidtok evaluate's fvd
EVAL = {
    "step": 400,
    "psnr": 24.5123,
    "ssim": 0.71234,
    "lpips": 0.3,
    "fvd": 210.5,
    "initial_psnr": 11.25,
    "validation_data": "UCF-101",
    "dataset_split": "test",
    "num_validation_clips": 64,
    "num_frames": 4,
    "resolution": 16,
    "history": [{"step": 200, "psnr": 20.0}],
    "val/psnr": 99.0,  # a spelling the library never writes: ignored, not guessed
}
TRAIN = {
    "learning_rate": 1e-4,
    "train_batch_size": 2,
    "max_train_steps": 400,
    "hub_token": "hf_secret_value",
    "seed": 3,
}


def _metrics(card):
    return {(r.metric_name, r.metric_type): r.metric_value for r in card.data.eval_results}


def test_tokenizer_card_metadata_results_and_sections(tmp_path):
    model = tiny_tokenizer()
    card = create_model_card(
        model, repo_id="user/tiny-larp", eval_results=EVAL, training_config=TRAIN, datasets=["ucf101"]
    )
    data = card.data
    assert data.library_name == "hf_vidtok" and data.license == "mit"
    assert {"hf_vidtok", "video-tokenizer", "arxiv:2410.21264", "arxiv:2603.12267"} <= set(data.tags)
    assert data.datasets == ["ucf101"] and data.model_name == "tiny-larp"
    # a bare "fvd" of a tokenizer is its reconstruction FVD
    assert _metrics(card) == {
        ("PSNR", "psnr"): 24.5123,
        ("SSIM", "ssim"): 0.7123,
        ("LPIPS", "lpips"): 0.3,
        ("rFVD", "fvd"): 210.5,
    }
    result = data.eval_results[0]
    assert (result.task_type, result.dataset_name, result.dataset_split) == ("video-reconstruction", "UCF-101", "test")
    text = str(card)
    assert "| PSNR | 24.5123 |" in text and "| rFVD | 210.5 |" in text and "| PSNR before training | 11.25 |" in text
    assert "- videos: 64" in text and "- training step: 400" in text
    assert "| learning rate | 0.0001 |" in text and "| training steps | 400 |" in text
    assert "hf_secret_value" not in text and "hub_token" not in text
    assert "tokens per clip: 8" in text and "codebook: 37 codes of dimension 8" in text
    n_params = sum(p.numel() for p in model.parameters())
    assert f"{n_params:,}" in text
    assert "## Intended use and limitations" in text and "Limitations:" in text
    assert "LARP: Tokenizing Videos with a Learned Autoregressive Generative Prior" in text
    assert "EVATok: Adaptive Length Video Tokenization for Efficient Visual Autoregressive Generation" in text
    assert AUTO_CARD_MARKER in text
    # the card survives save/load with its model-index
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    assert _metrics(loaded) == _metrics(card)
    assert loaded.data.library_name == "hf_vidtok"


def test_generator_card_uses_gfvd_and_class_names():
    model = tiny_generator()
    card = create_model_card(
        model,
        repo_id="user/tiny-ar",
        eval_results={"gfvd": 300.0, "cfg_scale": 1.25},
        tokenizer_repo_id="user/tiny-larp",
    )
    assert _metrics(card) == {("gFVD", "fvd"): 300.0}
    assert card.data.eval_results[0].task_type == "video-generation"
    assert card.data.base_model == "user/tiny-larp"
    text = str(card)
    assert "CFG scale: 1.25" in text and ", ".join(CLASS_NAMES) in text
    assert "3 classes (+ a null class" in text
    fp = create_model_card(tiny_generator(frame_prediction=True), eval_results={"fvd": 5.0})
    assert _metrics(fp) == {("FP-FVD", "fvd"): 5.0}
    assert "frame prediction" in str(fp)


def test_card_without_results_has_no_model_index():
    card = create_model_card(tiny_tokenizer().config)
    assert card.data.eval_results is None
    assert "No evaluation results were recorded" in str(card)
    assert "No training configuration was recorded" in str(card)


def test_eval_results_file_history_and_errors(tmp_path):
    path = tmp_path / "eval_results.json"
    path.write_text(json.dumps([{"step": 1, "psnr": 10.0}, {"step": 2, "psnr": 20.0, "ssim": 0.5}]))
    card = create_model_card(tiny_tokenizer().config, eval_results=path)
    assert _metrics(card) == {("PSNR", "psnr"): 20.0, ("SSIM", "ssim"): 0.5}
    with pytest.raises(FileNotFoundError, match="eval_results"):
        create_model_card(tiny_tokenizer().config, eval_results=tmp_path / "missing.json")
    with pytest.raises(ValueError, match="psnr.*finite"):
        create_model_card(tiny_tokenizer().config, eval_results={"psnr": float("nan")})
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        create_model_card(tiny_tokenizer().config, eval_results=path)
    with pytest.raises(TypeError, match="eval_results"):
        create_model_card(tiny_tokenizer().config, eval_results=3)


def test_describe_rejects_other_models(tmp_path):
    with pytest.raises(ValueError, match="model_type='bert'"):
        create_model_card({"model_type": "bert"})
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="model_type='bert'"):
        describe(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such model folder"):
        describe(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="neither config.json nor model_index.json"):
        describe(tmp_path.parent)
    with pytest.raises(TypeError, match="LarpTokenizer"):
        create_model_card(3.5)
    with pytest.raises(ValueError, match="kind"):
        template_path("unet")


def test_folder_card_picks_up_eval_results_and_training_config(tmp_path):
    folder = tmp_path / "run" / "tokenizer"
    tiny_tokenizer().save_pretrained(folder)
    (tmp_path / "run" / "eval_results.json").write_text(json.dumps({"step": 9, "psnr": 30.0, "ssim": 0.9}))
    (tmp_path / "run" / "training_config.json").write_text(json.dumps({"learning_rate": 0.001, "api_key": "x"}))
    card = create_model_card(folder, repo_id="me/from-folder")
    assert _metrics(card) == {("PSNR", "psnr"): 30.0, ("SSIM", "ssim"): 0.9}
    assert "| learning rate | 0.001 |" in str(card) and "api_key" not in str(card)


def test_custom_template(tmp_path):
    template = tmp_path / "t.md"
    template.write_text(
        "---\n{{ card_data }}\n---\n# {{ model_name }}\n"
        "{% for row in results %}{{ row.name }}={{ row.value }};{% endfor %}\n"
    )
    card = create_model_card(
        tiny_tokenizer().config, model_name="custom", eval_results={"psnr": 1.5}, template=template
    )
    assert "PSNR=1.5;" in card.text and card.data.model_name == "custom"


def _run_snippet(card, monkeypatch, tmp_path, capsys):
    code = extract_python_snippet(str(card))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "<model card snippet>", "exec"), {"__name__": "__main__"})
    return capsys.readouterr().out


def test_tokenizer_snippet_runs_as_written(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "tiny-larp"
    tokenizer = tiny_tokenizer()
    tokenizer.save_pretrained(folder)
    card = create_model_card(tokenizer, repo_id=str(folder))
    out = _run_snippet(card, monkeypatch, tmp_path, capsys)
    assert "torch.Size([1, 8]) torch.Size([1, 3, 4, 16, 16])" in out


def test_generator_snippets_run_as_written(tmp_path, monkeypatch, capsys):
    tok_dir, ar_dir, fp_dir = tmp_path / "tok", tmp_path / "ar", tmp_path / "fp"
    tiny_tokenizer().save_pretrained(tok_dir)
    generator = tiny_generator()
    generator.save_pretrained(ar_dir)
    card = create_model_card(generator, repo_id=str(ar_dir), tokenizer_repo_id=str(tok_dir))
    out = _run_snippet(card, monkeypatch, tmp_path, capsys)
    assert "torch.Size([1, 8]) torch.Size([1, 3, 4, 16, 16])" in out
    fp = tiny_generator(frame_prediction=True)
    fp.save_pretrained(fp_dir)
    out = _run_snippet(create_model_card(fp, repo_id=str(fp_dir)), monkeypatch, tmp_path, capsys)
    assert "torch.Size([1, 8])" in out
    assert torch.is_tensor(generator.generate(class_labels=[0], generator=torch.Generator().manual_seed(0)))


def test_pipeline_folder_card(tmp_path):
    folder = tmp_path / "pipe"
    tiny_tokenizer().save_pretrained(folder / "tokenizer")
    tiny_generator().save_pretrained(folder / "generator")
    index = {"_class_name": "ClassToVideoPipeline", "_diffusers_version": "0.42.1",
             "tokenizer": ["hf_vidtok.models.larp.modeling_larp", "LarpTokenizer"],
             "generator": ["hf_vidtok.models.video_ar.modeling_video_ar", "VideoARGenerator"]}  # fmt: skip
    (folder / "model_index.json").write_text(json.dumps(index))
    card = create_model_card(folder, repo_id="user/c2v", eval_results={"fvd": 99.5, "num_samples": 16})
    assert describe(folder)["kind"] == "class_to_video"
    assert [(r.metric_name, r.metric_type, r.metric_value) for r in card.data.eval_results] == [("gFVD", "fvd", 99.5)]
    text = str(card)
    assert "ClassToVideoPipeline.from_pretrained('user/c2v')" in text and "pipe('ApplyEyeMakeup'" in text
    assert "hf-vidtok generate --model user/c2v ApplyEyeMakeup --output_dir samples/" in text
    assert "- parameters: " in text  # counted from the saved safetensors headers
    assert "tokenizer: tokens per clip: 8" in text and "generator: classes: " + ", ".join(CLASS_NAMES) in text
    assert "given class names or ids" in text and "- samples: 16" in text
    index["_class_name"] = "FramePredictionPipeline"
    (folder / "model_index.json").write_text(json.dumps(index))
    fp = create_model_card(folder, repo_id="user/fp")
    assert "FramePredictionPipeline.from_pretrained('user/fp')" in str(fp) and "given the first frames" in str(fp)
    index["_class_name"] = "StableDiffusionPipeline"
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="not an hf_vidtok pipeline"):
        create_model_card(folder)


def test_pipeline_snippets_run_as_written(tmp_path, monkeypatch, capsys):
    from hubtest_utils import tiny_pipeline

    from hf_vidtok.pipelines import FramePredictionPipeline

    pipe = tiny_pipeline()
    pipe.save_pretrained(tmp_path / "c2v")
    card = create_model_card(pipe, repo_id=str(tmp_path / "c2v"))
    assert card.data.eval_results is None and "ClassToVideoPipeline" in str(card)
    out = _run_snippet(card, monkeypatch, tmp_path, capsys)
    assert "(1, 4, 16, 16, 3)" in out and (tmp_path / "sample.mp4").stat().st_size > 0

    fp = FramePredictionPipeline(tokenizer=tiny_tokenizer(), generator=tiny_generator(frame_prediction=True))
    fp.save_pretrained(tmp_path / "fp")
    card = create_model_card(fp, repo_id=str(tmp_path / "fp"))
    out = _run_snippet(card, monkeypatch, tmp_path, capsys)
    assert "(1, 4, 16, 16, 3)" in out and (tmp_path / "prediction.mp4").stat().st_size > 0


def test_snippets_without_repo_id_run_from_the_model_folder(tmp_path, monkeypatch, capsys):
    """No repo id known: the snippets load the folder holding the card (a placeholder path), not the card title."""
    from hf_vidtok.hub import LOCAL_MODEL_PATH, save_pretrained_with_card

    folder = tmp_path / "my model"
    card = save_pretrained_with_card(tiny_tokenizer(), folder, eval_results={"psnr": 20.0})
    text = (folder / "README.md").read_text()
    assert f"LarpTokenizer.from_pretrained({LOCAL_MODEL_PATH!r})" in text and "LARP video tokenizer'" not in text
    assert "run the code from there, or replace it by the model's Hub repo id" in text
    out = _run_snippet(card, monkeypatch, folder, capsys)
    assert "torch.Size([1, 8]) torch.Size([1, 3, 4, 16, 16])" in out


def test_shell_lines_quote_every_argument(tmp_path):
    """A path with spaces and quotes survives the shell: every argument of the CLI lines is shlex-quoted."""
    import re
    import shlex

    from hubtest_utils import tiny_pipeline

    folder = tmp_path / "it's a model"
    tiny_tokenizer().save_pretrained(folder)
    card = create_model_card(folder, repo_id=str(folder))
    shell = re.search(r"```bash\n(.*?)```", str(card), re.DOTALL).group(1).strip().splitlines()
    assert [shlex.split(line)[:4] for line in shell] == [
        ["hf-vidtok", "encode", "--model", str(folder)],
        ["hf-vidtok", "reconstruct", "--model", str(folder)],
    ]
    pipe = tiny_pipeline()
    pipe.generator.config.id2label = {0: "Apply Eye Makeup", 1: "b", 2: "c"}
    line = re.search(r"```bash\n(.*?)```", str(create_model_card(pipe, repo_id="user/c2v")), re.DOTALL).group(1)
    assert shlex.split(line)[:5] == ["hf-vidtok", "generate", "--model", "user/c2v", "Apply Eye Makeup"]
