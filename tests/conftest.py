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

from fake_hub import fake_hub_server, hub  # noqa: E402,F401 (the fake Hub's pytest fixtures, for every test)

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def larp_fixture_dir():
    """The official tiny LARP export in ``tests/fixtures/larp_official_tiny`` (see ``tests/fixtures/README.md``)."""
    path = FIXTURES / "larp_official_tiny"
    if not path.is_dir():
        pytest.fail(f"official fixture folder not found at {path}")
    return path


