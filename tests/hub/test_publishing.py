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


def test_models_do_not_depend_on_publishing_and_push_to_hub_is_one_path(hub, tmp_path):
    """The model classes carry no publishing mixin (their push_to_hub is transformers'); hf_vidtok.hub.push_to_hub
    is save_pretrained_with_card + publish_folder, so a folder published later gives the same files."""
    import inspect

    import hf_vidtok.models.larp.modeling_larp as modeling_larp
    import hf_vidtok.models.video_ar.modeling_video_ar as modeling_video_ar
    from hf_vidtok.hub import save_pretrained_with_card

    for module in (modeling_larp, modeling_video_ar):
        assert "hub" not in inspect.getsource(module).split('"""', 2)[2].split("class ", 1)[0]
    for cls in (LarpTokenizer, VideoARGenerator):
        assert all(base.__module__.split(".")[0] in ("hf_vidtok", "transformers", "torch", "builtins")
                   for base in cls.__mro__)
        assert not any(base.__module__.startswith("hf_vidtok.hub") for base in cls.__mro__)
    for model, repo in ((tiny_tokenizer(seed=6), "user/one-path-tok"), (tiny_generator(seed=6), "user/one-path-ar")):
        push_to_hub(model, repo, revision="dev", commit_message="pushed", eval_results={"psnr": 20.0})
        save_pretrained_with_card(model, tmp_path / repo, repo_id=repo, eval_results={"psnr": 20.0})
        publish_folder(tmp_path / repo, repo, revision="folder")
        assert hub.files(repo, "dev") == hub.files(repo, "folder")
        assert _card(hub, repo, "dev").data.library_name == "hf_vidtok"
        _assert_same_weights(type(model).from_pretrained(repo, revision="dev"), model)


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
