"""LPIPS / I3D weights from a Hub repo id, against the local fake Hub of tests/hub (no network)."""

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hub"))
fake_hub = pytest.importorskip("fake_hub", reason="tests/hub/fake_hub.py provides the local fake Hub")

from hf_vidtok.metrics import FVD, InceptionI3D  # noqa: E402
from hf_vidtok.hub.loading import resolve_file  # noqa: E402


@pytest.fixture
def hub(tmp_path):
    server = fake_hub.FakeHub()
    try:
        with fake_hub.hub_environment(server, tmp_path / "hf_cache"):
            yield server
    finally:
        server.close()


def test_i3d_from_hub_repo_id(hub, tmp_path):
    from huggingface_hub import HfApi

    torch.manual_seed(0)
    i3d = InceptionI3D(width_divisor=32)
    path = i3d.save_pretrained(tmp_path / "w")
    api = HfApi()
    api.create_repo("user/i3d-tiny", exist_ok=True)
    api.upload_file(path_or_fileobj=path, path_in_repo=os.path.basename(path), repo_id="user/i3d-tiny")
    loaded = FVD.from_pretrained("user/i3d-tiny").i3d
    assert loaded.width_divisor == 32
    for k, v in i3d.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_local_paths_never_reach_the_hub(tmp_path):
    # strings that are not "user/name" repo ids are treated as local and must exist
    for bad in [str(tmp_path / "nope.safetensors"), "./nope", "a/b/c"]:
        with pytest.raises(FileNotFoundError):
            resolve_file(bad, "x.safetensors")
    with pytest.raises(TypeError, match="path_or_repo_id"):
        resolve_file(3, "x.safetensors")
