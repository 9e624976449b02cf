"""push_to_hub / publish_folder against the local fake Hub (tests/hub/fake_hub.py)."""

import io
import json

import pytest
import torch
from hubtest_utils import assert_same_weights, tiny_generator, tiny_tokenizer
from huggingface_hub import ModelCard, constants, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, RevisionNotFoundError
from safetensors.torch import load as load_safetensors

from hf_vidtok import LarpTokenizer
from hf_vidtok.hub import AUTO_CARD_MARKER, publish_folder, push_to_hub
from hf_vidtok.models.video_ar import VideoARGenerator

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


_assert_same_weights = assert_same_weights


def _data_files(files):
    return {name for name in files if not name.endswith(".py")}


def _card(hub, repo_id, revision="main"):
    return ModelCard(hub.files(repo_id, revision)["README.md"].decode())


def test_push_tokenizer_with_card_and_load_back(hub):
    tokenizer = tiny_tokenizer(seed=1)
    info = push_to_hub(
        tokenizer,
        "user/tiny-tokenizer",
        eval_results={"step": 50, "psnr": 22.25, "ssim": 0.625, "initial_psnr": 12.0},
        training_config={"learning_rate": 3e-4, "hub_token": "hf_do_not_leak"},
        commit_message="first upload",
    )
    assert info.oid == hub.repos["user/tiny-tokenizer"].branches["main"]
    files = hub.files("user/tiny-tokenizer")
    # (+ the model's code files that register_for_auto_class saves next to config.json)
    assert _data_files(files) == {"config.json", "model.safetensors", "README.md", "eval_results.json", "training_config.json"}
    assert not any(name.endswith(PICKLE_SUFFIXES) for name in files)
    assert json.loads(files["config.json"])["model_type"] == "larp_tokenizer"
    assert b"hf_do_not_leak" not in files["training_config.json"] + files["README.md"]
    card = _card(hub, "user/tiny-tokenizer")
    assert card.data.library_name == "hf_vidtok"
    assert {(r.metric_name, r.metric_value) for r in card.data.eval_results} == {("PSNR", 22.25), ("SSIM", 0.625)}
    assert "LarpTokenizer.from_pretrained('user/tiny-tokenizer')" in card.text
    assert hub.repos["user/tiny-tokenizer"].messages[info.oid] == "first upload"

    loaded = LarpTokenizer.from_pretrained("user/tiny-tokenizer")
    _assert_same_weights(loaded, tokenizer)
    video = torch.rand(2, 3, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded.eval().encode(video).indices, tokenizer.encode(video).indices)
    # the uploaded weights are exactly the model's
    weights = load_safetensors(files["model.safetensors"])
    assert torch.equal(weights[next(iter(weights))], tokenizer.state_dict()[next(iter(weights))])


def test_revisions_missing_entries_and_offline_cache(hub, tmp_path):
    repo = "user/tiny-tokenizer-revs"
    first, second = tiny_tokenizer(seed=2), tiny_tokenizer(seed=3)
    push_to_hub(first, repo)
    info = push_to_hub(second, repo, revision="v2", commit_message="second weights")
    assert set(hub.repos[repo].branches) == {"main", "v2"} and hub.repos[repo].branches["v2"] == info.oid
    _assert_same_weights(LarpTokenizer.from_pretrained(repo), first)
    _assert_same_weights(LarpTokenizer.from_pretrained(repo, revision="v2"), second)
    # a commit sha is a revision too
    _assert_same_weights(LarpTokenizer.from_pretrained(repo, revision=info.oid), second)

    with pytest.raises(OSError, match="user/does-not-exist"):
        LarpTokenizer.from_pretrained("user/does-not-exist")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo, "missing.json")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo, "config.json", revision="no-such-branch")
    with pytest.raises(OSError, match="no-such-branch"):
        LarpTokenizer.from_pretrained(repo, revision="no-such-branch")

    # HF_HUB_OFFLINE=1: the cached revisions still load, an uncached repo gives a clear error
    constants.HF_HUB_OFFLINE = True  # restored by the `hub` fixture
    served = len(hub.requests)
    _assert_same_weights(LarpTokenizer.from_pretrained(repo), first)
    _assert_same_weights(LarpTokenizer.from_pretrained(repo, revision="v2"), second)
    assert len(hub.requests) == served, "offline loading must not reach the server"
    with pytest.raises(OSError, match="cached files"):
        LarpTokenizer.from_pretrained("user/never-downloaded")


def test_push_generator_and_generate_same_tokens(hub):
    generator = tiny_generator(seed=4)
    push_to_hub(generator, "user/tiny-ar", eval_results={"gfvd": 123.0}, tokenizer_repo_id="user/tiny-tokenizer")
    loaded = VideoARGenerator.from_pretrained("user/tiny-ar").eval()
    _assert_same_weights(loaded, generator)
    kwargs = dict(class_labels=[0, 2], cfg_scale=1.5)
    a = loaded.generate(**kwargs, generator=torch.Generator().manual_seed(7))
    b = generator.generate(**kwargs, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    card = _card(hub, "user/tiny-ar")
    assert card.data.base_model == "user/tiny-tokenizer"
    assert [(r.metric_name, r.metric_value) for r in card.data.eval_results] == [("gFVD", 123.0)]


def test_push_to_hub_rejects_bad_arguments(hub):
    for bad in ("a/b/c", "user/na me", "-user/x", "user//x", ""):
        with pytest.raises(ValueError, match="repo_id"):
            push_to_hub(tiny_tokenizer(), bad)
    assert not hub.repos.get("a/b/c")
    with pytest.raises(TypeError, match="save_pretrained"):
        push_to_hub(object(), "user/obj")


def test_publish_folder_regenerates_auto_card_and_skips_leftovers(hub, tmp_path):
    run = tmp_path / "run"
    folder = run / "tokenizer"
    tokenizer = tiny_tokenizer(seed=5)
    tokenizer.save_pretrained(folder)
    (run / "eval_results.json").write_text(json.dumps({"step": 10, "psnr": 31.5, "ssim": 0.875, "initial_psnr": 10.0}))
    (run / "training_config.json").write_text(json.dumps({"max_train_steps": 10}))
    (folder / "checkpoint-10").mkdir()
    (folder / "checkpoint-10" / "optimizer.bin").write_bytes(b"x")
    (folder / ".hidden").write_text("x")
    publish_folder(folder, "user/published", private=True)
    files = hub.files("user/published")
    assert _data_files(files) == {"config.json", "model.safetensors", "README.md"}
    assert hub.repos["user/published"].private
    card = _card(hub, "user/published")
    assert {(r.metric_name, r.metric_value) for r in card.data.eval_results} == {("PSNR", 31.5), ("SSIM", 0.875)}
    assert "| training steps | 10 |" in card.text and "from_pretrained('user/published')" in card.text
    _assert_same_weights(LarpTokenizer.from_pretrained("user/published"), tokenizer)

    # a hand-written README is uploaded as it is; one generated by hf_vidtok is regenerated
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# my own card\n")
    publish_folder(folder, "user/published", revision="handwritten")
    assert hub.files("user/published", "handwritten")["README.md"].startswith(b"---\nlicense: mit")
    (folder / "README.md").write_text(f"# stale\n{AUTO_CARD_MARKER}\n")
    publish_folder(folder, "user/published", revision="regen", eval_results={"psnr": 33.0})
    assert [(r.metric_name, r.metric_value) for r in _card(hub, "user/published", "regen").data.eval_results] == [
        ("PSNR", 33.0)
    ]

    (folder / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ValueError, match="safetensors only"):
        publish_folder(folder, "user/published")
    with pytest.raises(FileNotFoundError, match="neither config.json nor model_index.json"):
        publish_folder(tmp_path, "user/published")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        publish_folder(tmp_path / "nope", "user/published")


def test_own_push_to_hub_from_an_empty_folder_publishes_the_hf_vidtok_card(hub, tmp_path, monkeypatch):
    """model.push_to_hub / pipe.push_to_hub / save_pretrained(push_to_hub=True), run from an empty working directory,
    publish the hf_vidtok card (never transformers' / diffusers' generic one) and the same files as
    hf_vidtok.hub.push_to_hub."""
    from hubtest_utils import tiny_pipeline

    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "empty")
    objects = [(tiny_tokenizer(seed=6), "user/own-tok"), (tiny_generator(seed=6), "user/own-ar"),
               (tiny_pipeline(seed=6), "user/own-c2v")]  # fmt: skip
    for obj, repo in objects:
        obj.push_to_hub(repo, commit_message="own push")
        push_to_hub(obj, repo, revision="helper")
        assert hub.files(repo) == hub.files(repo, "helper")
        card = _card(hub, repo)
        assert card.data.library_name == "hf_vidtok"
        assert "More Information Needed" not in card.text and "library_name: transformers" not in card.text
        assert f"from_pretrained('{repo}')" in card.text
        obj.save_pretrained(tmp_path / "saved" / repo, push_to_hub=True, repo_id=repo + "-2", revision="dev")
        assert _card(hub, repo + "-2", "dev").data.library_name == "hf_vidtok"
        assert (tmp_path / "saved" / repo / "README.md").is_file()
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == []  # nothing written to the working directory
    _assert_same_weights(LarpTokenizer.from_pretrained("user/own-tok"), objects[0][0])
    _assert_same_weights(VideoARGenerator.from_pretrained("user/own-ar"), objects[1][0])


def test_save_pretrained_writes_the_card_and_keeps_a_hand_written_one(tmp_path):
    tokenizer = tiny_tokenizer(seed=7)
    tokenizer.save_pretrained(tmp_path / "a")
    card = ModelCard.load(tmp_path / "a" / "README.md")
    assert card.data.library_name == "hf_vidtok" and AUTO_CARD_MARKER in card.text
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "eval_results.json").write_text(json.dumps({"psnr": 21.5}))
    tokenizer.save_pretrained(tmp_path / "b")  # results next to the folder go into the card
    assert [(r.metric_name, r.metric_value) for r in ModelCard.load(tmp_path / "b" / "README.md").data.eval_results] == [
        ("PSNR", 21.5)
    ]
    (tmp_path / "b" / "README.md").write_text("# my own card\n")
    tokenizer.save_pretrained(tmp_path / "b")
    assert (tmp_path / "b" / "README.md").read_text() == "# my own card\n"  # the user's card is never overwritten
    tokenizer.save_pretrained(tmp_path / "c", model_card=False)
    assert not (tmp_path / "c" / "README.md").exists()


def test_model_modules_import_the_card_code_lazily():
    """Importing the models does not import hf_vidtok.hub (the card code is imported inside the methods)."""
    import subprocess
    import sys

    code = (
        "import sys, hf_vidtok; from hf_vidtok import LarpTokenizer; from hf_vidtok.models.video_ar import "
        "VideoARGenerator; bad = [m for m in sys.modules if m.startswith('hf_vidtok.hub')]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fake_hub_serves_bytes_exactly(hub):
    push_to_hub(tiny_tokenizer(seed=8), "user/bytes")
    path = hf_hub_download("user/bytes", "config.json")
    with open(path, "rb") as f:
        assert f.read() == hub.files("user/bytes")["config.json"]
    assert json.load(io.BytesIO(hub.files("user/bytes")["config.json"]))["codebook_size"] == 37


def test_push_pipeline_and_load_back(hub):
    from hubtest_utils import tiny_pipeline

    from hf_vidtok.hub import resolve_pipeline_folder
    from hf_vidtok.pipelines import ClassToVideoPipeline

    pipe = tiny_pipeline(seed=9)
    push_to_hub(pipe, "user/tiny-c2v", eval_results={"gfvd": 456.5, "num_samples": 8}, revision="v1")
    files = hub.files("user/tiny-c2v", "v1")
    assert {"model_index.json", "tokenizer/config.json", "tokenizer/model.safetensors", "generator/config.json"} <= set(
        files
    )
    assert {"generator/model.safetensors", "README.md", "eval_results.json"} <= set(files)
    assert not any(name.endswith(PICKLE_SUFFIXES) for name in files)
    card = _card(hub, "user/tiny-c2v", "v1")
    assert card.data.library_name == "hf_vidtok"
    assert [(r.metric_name, r.metric_value) for r in card.data.eval_results] == [("gFVD", 456.5)]
    assert "ClassToVideoPipeline.from_pretrained('user/tiny-c2v')" in card.text

    def check(loaded):
        _assert_same_weights(loaded.tokenizer, pipe.tokenizer)
        _assert_same_weights(loaded.generator, pipe.generator)
        a = loaded("Biking", generator=torch.Generator().manual_seed(0)).frames
        b = pipe("Biking", generator=torch.Generator().manual_seed(0)).frames
        assert a.shape == (1, 4, 16, 16, 3) and (a == b).all()

    check(ClassToVideoPipeline.from_pretrained(resolve_pipeline_folder("user/tiny-c2v", revision="v1")))
    from hf_vidtok.hub import PipelineHubMixin

    assert issubclass(ClassToVideoPipeline, PipelineHubMixin)
    check(ClassToVideoPipeline.from_pretrained("user/tiny-c2v", revision="v1"))
    constants.HF_HUB_OFFLINE = True  # cached: still loads offline
    check(ClassToVideoPipeline.from_pretrained("user/tiny-c2v", revision="v1"))
