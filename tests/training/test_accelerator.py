"""hf_vidtok.training.accelerator: the warning for `accelerate launch --cpu --num_processes N` (one process)."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import pytest

pytest.importorskip("accelerate")

from hf_vidtok.training import accelerator as acc  # noqa: E402


@pytest.mark.parametrize(
    "launcher, warns",
    [
        (["--cpu", "--num_processes", "2", "train.py", "--seed", "1"], 2),
        (["--cpu", "--num_processes=4", "--mixed_precision", "no", "train.py"], 4),
        (["--cpu", "train.py"], None),  # one process asked, one started
        (["--multi_gpu", "--num_processes", "2", "train.py"], None),  # a real multi-process launch
        (["--num_processes", "2", "train.py"], None),
    ],
)
def test_cpu_launch_with_several_processes_is_warned(monkeypatch, caplog, launcher, warns):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(acc, "_launcher_arguments", lambda pid: launcher)
    with caplog.at_level(logging.WARNING, logger="hf_vidtok"):
        assert acc.warn_if_cpu_launch_ignores_num_processes() == warns
    messages = [r.getMessage() for r in caplog.records]
    if warns:
        assert any("started ONE process" in m and f"--num_processes {warns}" in m for m in messages)
        assert any("ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu" in m for m in messages)
    else:
        assert not messages
    monkeypatch.setenv("WORLD_SIZE", "2")  # launched by torchrun / --multi_gpu: never a one-process --cpu launch
    assert acc.warn_if_cpu_launch_ignores_num_processes() is None


def test_launcher_arguments_read_from_a_process_command_line():
    """The parent's command line as /proc shows it, for both spellings of the launcher."""
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc (Linux)")
    for head in (["-c", "import time; time.sleep(30)", "accelerate.commands.launch"],
                 ["-c", "import time; time.sleep(30)", "/venv/bin/accelerate", "launch"]):
        proc = subprocess.Popen([sys.executable, *head, "--cpu", "--num_processes", "2", "x.py", "--a", "1"])
        try:
            for _ in range(100):  # until the child has exec'd
                args = acc._launcher_arguments(proc.pid)
                if args is not None:
                    break
                time.sleep(0.02)
            assert args == ["--cpu", "--num_processes", "2", "x.py", "--a", "1"]
        finally:
            proc.kill()
            proc.wait()
    assert acc._launcher_arguments(10**9) is None  # no such process
