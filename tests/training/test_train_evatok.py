"""training/train_tokenizer.py with an EVATok tokenizer: random assignments, micro-batches, per-level
validation, exact resume (tiny sizes, CPU)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("accelerate")
pytest.importorskip("av")
yaml = pytest.importorskip("yaml")

import importlib.util  # noqa: E402
from pathlib import Path  # noqa: E402

# the LARP end-to-end tests' helpers (tiny generated videos, recipes, in-process runs); --import-mode=importlib
_spec = importlib.util.spec_from_file_location("_larp_train_tests", Path(__file__).with_name("test_train_tokenizer.py"))
_larp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_larp)
_recipe, _run_in_process, _load_script = _larp._recipe, _larp._run_in_process, _larp._load_script


@pytest.fixture(scope="module")
def video_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    for i in range(4):
        _larp._write_video(root / "train" / f"class{i % 2}" / f"v{i}.mp4", 10, 16, phase=i)
    for i in range(2):
        _larp._write_video(root / "val" / f"class{i}" / f"w{i}.mp4", 10, 16, phase=10 + i)
    return root

TINY_EVATOK = dict(num_frames=4, image_size=16, patch_size=8, temporal_patch_size=2, token_levels=[1, 2, 4],
                   hidden_size=16, num_attention_heads=2, encoder_layers=1, decoder_layers=1, codebook_size=37, code_dim=4)


def _evatok_recipe(tmp_path, video_root, **overrides):
    settings = dict(model_type="evatok_tokenizer", model_config=TINY_EVATOK, assignment_sampling="random",
                    assignment_micro_batches=2, vq_loss_weight=1.0, entropy_loss_weight=0.02, train_batch_size=3)
    return _recipe(tmp_path, video_root, **{**settings, **overrides})


def test_evatok_run_validates_every_level_and_resumes_exactly(tmp_path, video_root):
    from safetensors.torch import load_file

    recipe = _evatok_recipe(tmp_path, video_root)
    common = ["--config", str(recipe), "--max_train_steps", "4", "--checkpointing_steps", "10", "--validation_steps", "4",
              "--skip_initial_validation"]
    full = _run_in_process([*common, "--output_dir", str(tmp_path / "full")])
    assert full["step"] == 4
    for k in (1, 2, 4):
        assert 0 < full[f"psnr_uniform_{k}"] < 100 and 0 <= full[f"ssim_uniform_{k}"] <= 1
    assert full["psnr"] == full["psnr_uniform_4"]  # the default assignment: 4 tokens per block (4 patches)
    # stopped after 2 steps, resumed to 4: the same weights (assignments follow (seed, process, step))
    resumed_dir = tmp_path / "resumed"
    stopped = _run_in_process([*common, "--output_dir", str(resumed_dir), "--stop_after_steps", "2"])
    assert stopped == {"stopped_at_step": 2}
    _run_in_process([*common, "--output_dir", str(resumed_dir), "--resume_from_checkpoint", "latest"])
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(resumed_dir / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_evatok_assignments_depend_only_on_seed_process_step():
    module = _load_script()

    class Acc:
        process_index = 1

    class Args:
        seed = 3

    g1 = module.assignment_generator(Args, Acc, 7, 0)
    g2 = module.assignment_generator(Args, Acc, 7, 0)
    assert torch.equal(torch.randint(5, (8,), generator=g1), torch.randint(5, (8,), generator=g2))
    g3 = module.assignment_generator(Args, Acc, 7, 1)
    assert not torch.equal(torch.randint(5, (64,), generator=module.assignment_generator(Args, Acc, 7, 0)),
                           torch.randint(5, (64,), generator=g3))


def test_evatok_bad_sampling_spec(tmp_path, video_root):
    recipe = _evatok_recipe(tmp_path, video_root, assignment_sampling="uniform:3")
    with pytest.raises(ValueError, match="assignment_sampling"):
        _run_in_process(["--config", str(recipe)])


def test_evatok_recipes_parse():
    from hf_vidtok import EvatokTokenizerConfig
    from hf_vidtok.training.assignment_sampling import parse_assignment_sampling

    root = Path(__file__).resolve().parents[2] / "training" / "configs"
    module = _load_script()
    for name, extra in (("evatok_tiny_samples.yaml", []), ("evatok_proxy_webvid.yaml", ["--train_data_dir", "data/train.csv"])):
        args = module.parse_args(["--config", str(root / name), *extra])  # every key is a flag of the script
        assert args.model_type == "evatok_tokenizer"
        config = EvatokTokenizerConfig(**args.model_config)
        parse_assignment_sampling(args.assignment_sampling, config.token_levels, config.num_blocks)
    # stage 1 of the paper: the 145M defaults, random assignments, entropy 0.02, alignment 0.7, lr 1e-4 -> 1e-6
    assert config.max_tokens == 2048 and config.token_levels == [32, 64, 128, 256, 512]
    assert (args.assignment_sampling, args.entropy_loss_weight, args.alignment_weight) == ("random", 0.02, 0.7)
    assert (args.learning_rate, args.min_lr_mult, args.max_train_steps) == (1e-4, 0.01, 400000)  # 1e-4 -> 1e-6
    assert args.train_batch_size * 8 == 128


def test_evatok_torch_compile_runs_whole_graphs(tmp_path, video_root):
    """`--torch_compile` compiles the tokenizer (and the discriminator) with fullgraph=True: a graph break would
    raise. aot_eager captures the same graphs as inductor without generating code (cheap on CPU). The padded width
    of each micro-batch is its longest total rounded up to the largest level, so the tokens seen per step are the
    eager run's."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    recipe = _evatok_recipe(tmp_path, video_root, disc_start_step=0, disc_update_freq=1, assignment_micro_batches=1)
    common = ["--config", str(recipe), "--max_train_steps", "2", "--checkpointing_steps", "10", "--validation_steps", "2",
              "--skip_initial_validation"]
    compiled = _run_in_process([*common, "--output_dir", str(tmp_path / "compiled"), "--compile", "--torch_compile_backend",
                                "aot_eager"])
    assert compiled["step"] == 2 and 0 < compiled["psnr"] < 100
    assert counters["stats"]["unique_graphs"] >= 2 and not counters["graph_break"]  # tokenizer + discriminator
    torch._dynamo.reset()
    args = _load_script().parse_args(["--config", str(recipe), "--compile"])
    assert args.torch_compile and args.torch_compile_backend == "inductor"  # `--compile` is the old name


def test_static_padded_length():
    from hf_vidtok.training.assignment_sampling import static_padded_length

    a = torch.tensor([[1, 2, 4], [1, 1, 1]])
    assert static_padded_length(a, 4) == 8 and static_padded_length(a, 1) == 7 and static_padded_length(a[1:], 4) == 4
    with pytest.raises(ValueError, match="multiple"):
        static_padded_length(a, 0)
    with pytest.raises(ValueError, match="token_counts"):
        static_padded_length(a[0], 4)
