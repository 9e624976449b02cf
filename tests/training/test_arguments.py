"""hf_vidtok.training.arguments: YAML recipes merged with flags, shared groups, one validation."""

from __future__ import annotations

import argparse
import os

import pytest

from hf_vidtok.training import arguments as targs
from hf_vidtok.training import check_output_dir_writable


def _parser():
    p = argparse.ArgumentParser()
    p.add_argument("--config")
    targs.add_optimization_arguments(p, learning_rate=1e-4, adam_betas=(0.9, 0.95), weight_decay=0.0,
                                     train_batch_size=4, max_train_steps=10)
    targs.add_data_arguments(p)
    targs.add_runtime_arguments(p)
    targs.add_checkpointing_arguments(p, checkpointing_steps=5, validation_steps=5)
    targs.add_tracking_arguments(p, project_name="x")
    p.add_argument("--pretrained_model_name_or_path")
    p.add_argument("--config_name")
    p.set_defaults(output_dir="out")
    return p


def test_yaml_config_merged_with_cli(tmp_path):
    cfg = tmp_path / "r.yaml"
    cfg.write_text("learning_rate: 3.0e-4\nmax_train_steps: 50\nmodel_config: {frame_num: 4}\n")
    args = targs.parse_args_with_config(_parser(), ["--config", str(cfg), "--max_train_steps", "7"], dict_keys=["model_config"])
    assert args.learning_rate == pytest.approx(3e-4)
    assert args.max_train_steps == 7  # the command line wins over the file
    assert args.model_config == {"frame_num": 4}
    args = targs.parse_args_with_config(_parser(), [], dict_keys=["model_config"])
    assert args.learning_rate == pytest.approx(1e-4) and args.model_config is None
    assert args.lr_scheduler == "larp_cosine" and args.random_flip is True


def test_torch_compile_flag_its_alias_and_recipe_keys(tmp_path):
    parse = targs.parse_args_with_config
    assert parse(_parser(), ["--torch_compile"]).torch_compile is True
    assert parse(_parser(), ["--compile"]).torch_compile is True  # the old name
    args = parse(_parser(), [])
    assert args.torch_compile is False and args.torch_compile_backend == "inductor"
    for key in ("torch_compile", "compile"):  # a recipe may use either name
        cfg = tmp_path / f"{key}.yaml"
        cfg.write_text(f"{key}: true\ntorch_compile_backend: aot_eager\n")
        args = parse(_parser(), ["--config", str(cfg)])
        assert args.torch_compile is True and args.torch_compile_backend == "aot_eager"
    both = tmp_path / "both.yaml"
    both.write_text("compile: true\ntorch_compile: false\n")
    with pytest.raises(ValueError, match="torch_compile"):
        parse(_parser(), ["--config", str(both)])
    with pytest.raises(SystemExit):
        parse(_parser(), ["--torch_compile_backend", "nope"])


def test_command_line_source_replaces_the_recipes_alternatives(tmp_path):
    """A recipe that trains on the sample videos, run with `--train_data_dir`: the command line wins (it used to
    be ignored silently); `--no-sample_videos` turns the recipe's choice off; a model source given on the command
    line replaces the recipe's `model_config`."""
    cfg = tmp_path / "r.yaml"
    cfg.write_text("sample_videos: true\nmodel_config: {frame_num: 4}\nlearning_rate: 3.0e-4\n")
    parse = lambda *argv: targs.parse_args_with_config(_parser(), ["--config", str(cfg), *argv], dict_keys=["model_config"])  # noqa: E731
    args = parse("--train_data_dir", "my/videos")
    assert args.train_data_dir == "my/videos" and args.sample_videos is False
    assert args.model_config == {"frame_num": 4} and args.learning_rate == pytest.approx(3e-4)  # other groups untouched
    args = parse("--no-sample_videos")
    assert args.sample_videos is False and args.train_data_dir is None
    args = parse()
    assert args.sample_videos is True and args.train_data_dir is None
    args = parse("--pretrained_model_name_or_path", "some/model")
    assert args.model_config is None and args.pretrained_model_name_or_path == "some/model" and args.sample_videos
    args = parse("--sample_videos", "--config_name", "c.json")  # both on the command line: both kept
    assert args.sample_videos is True and args.config_name == "c.json" and args.model_config is None
    cfg.write_text("train_data_dir: data/videos\n")
    args = parse("--sample_videos")
    assert args.sample_videos is True and args.train_data_dir is None


def test_yaml_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rat: 1\n")
    with pytest.raises(ValueError, match="unknown keys.*learning_rat"):
        targs.parse_args_with_config(_parser(), ["--config", str(bad)])
    bad.write_text("lr_scheduler: weird\n")
    with pytest.raises(ValueError, match="lr_scheduler"):
        targs.parse_args_with_config(_parser(), ["--config", str(bad)])
    with pytest.raises(ValueError, match="does not exist"):
        targs.parse_args_with_config(_parser(), ["--config", str(tmp_path / "missing.yaml")])


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--train_batch_size", "0"], "train_batch_size"),
        (["--checkpoints_total_limit", "0"], "checkpoints_total_limit"),
        (["--dataloader_num_workers", "-1"], "dataloader_num_workers"),
        (["--learning_rate", "0"], "learning_rate"),
        (["--min_lr_mult", "2"], "min_lr_mult"),
        (["--push_to_hub"], "hub_model_id"),
        (["--pretrained_model_name_or_path", "a", "--config_name", "b"], "only one of"),
    ],
)
def test_validate_args_names_the_flag(argv, match):
    args = targs.parse_args_with_config(_parser(), argv)
    with pytest.raises(ValueError, match=match):
        targs.validate_args(args, model_sources=("pretrained_model_name_or_path", "config_name"))


def test_validate_args_unsets_none_paths():
    args = targs.parse_args_with_config(_parser(), ["--pretrained_model_name_or_path", "None", "--config_name", "c"])
    targs.validate_args(args, model_sources=("pretrained_model_name_or_path", "config_name"))
    assert args.pretrained_model_name_or_path is None and args.config_name == "c"


def test_output_dir_not_writable(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="output_dir"):
        check_output_dir_writable(blocker / "sub")
    assert os.path.isdir(check_output_dir_writable(tmp_path / "new" / "dir"))
