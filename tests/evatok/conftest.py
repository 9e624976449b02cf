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
