import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fake_hub import FakeHub, hub_environment  # noqa: E402


@pytest.fixture(scope="session")
def fake_hub_server():
    hub = FakeHub()
    yield hub
    hub.close()


@pytest.fixture
def hub(fake_hub_server, tmp_path):
    """The fake Hub, with huggingface_hub pointed at it (online) and a fresh download cache."""
    with hub_environment(fake_hub_server, tmp_path / "hf_cache"):
        yield fake_hub_server
