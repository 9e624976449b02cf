import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Probe results of video files are cached on disk; keep the suite's cache out of the user's datasets cache.
if "HF_VIDTOK_PROBE_CACHE" not in os.environ:
    import tempfile

    os.environ["HF_VIDTOK_PROBE_CACHE"] = tempfile.mkdtemp(prefix="hf_vidtok_probe_cache_")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

# tests/hub holds the local fake Hub (fake_hub.py) and the tiny models of the Hub / CLI tests (hubtest_utils.py)
sys.path.insert(0, str(Path(__file__).resolve().parent / "hub"))

from fake_hub import FakeHub, hub_environment  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def larp_fixture_dir():
    """The official tiny LARP export in ``tests/fixtures/larp_official_tiny`` (see ``tests/fixtures/README.md``)."""
    path = FIXTURES / "larp_official_tiny"
    if not path.is_dir():
        pytest.fail(f"official fixture folder not found at {path}")
    return path


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
