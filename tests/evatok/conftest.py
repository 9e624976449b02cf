"""Fixtures of the EVATok stage-2 tests; puts evatok_test_helpers on sys.path."""

import sys
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from evatok_test_helpers import synthetic_table  # noqa: E402


@pytest.fixture
def table():
    return synthetic_table()


@pytest.fixture(autouse=True)
def _single_thread():
    """Tiny tensors: one intra-op thread avoids oversubscription stalls on shared CI cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
