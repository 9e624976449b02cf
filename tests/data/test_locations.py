"""Where data_dir points: local paths stay local, Hub ids become hf://datasets/..., URLs go through fsspec."""

import os

import pytest

from hf_vidtok.data import is_remote_location, resolve_location

fsspec = pytest.importorskip("fsspec")


def test_local_paths_hub_ids_and_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "user" / "repo").mkdir(parents=True)
    assert not is_remote_location(str(tmp_path)) and not is_remote_location(tmp_path)
    assert not is_remote_location("user/repo")  # an existing local folder wins over the Hub id
    assert not is_remote_location(f"file://{tmp_path}")
    assert not is_remote_location("no/such/folder") and not is_remote_location("plain")  # not owner/name: local
    for remote in ("owner/name", "owner/name@v1.0", "hf://datasets/owner/name", "memory://x", "filecache::hf://x/y"):
        assert is_remote_location(remote), remote
    loc = resolve_location("owner/name")
    assert loc.url == "hf://datasets/owner/name" and loc.given == "owner/name" and loc.remote
    local = resolve_location(f"file://{tmp_path}/user")
    assert not local.remote and local.url == os.path.join(str(tmp_path), "user")
    assert local.url_of("repo/a.mp4") == os.path.join(str(tmp_path), "user", "repo", "a.mp4")


def test_listing_a_remote_root(tmp_path):
    fs = fsspec.filesystem("memory")
    for name in ("b/2.mp4", "a/10.mp4", "a/1.mp4", "a.mp4"):
        fs.pipe(f"/listing/{name}", b"x" * len(name))
    loc = resolve_location("memory://listing")
    files = loc.files()
    assert [f.rel for f in files] == ["a/1.mp4", "a/10.mp4", "a.mp4", "b/2.mp4"]  # by path components, like rglob
    assert [f.size for f in files] == [7, 8, 5, 7] and all(f.version for f in files)
    assert loc.url_of("a/1.mp4") == "memory://listing/a/1.mp4"
    with loc.open("a/1.mp4") as f:
        assert f.read() == b"x" * 7
    single = resolve_location("memory://listing/a.mp4")
    assert single.is_file() and [f.rel for f in single.files()] == [""]


def test_unlistable_locations_raise_value_errors():
    with pytest.raises(ValueError, match="no fsspec file system"):
        resolve_location("nosuchprotocol://bucket/videos")
    with pytest.raises(ValueError, match="does not exist"):
        resolve_location("memory://does/not/exist").files()
    # offline (HF_HUB_OFFLINE=1, as the tests run) or online, this repo cannot be listed
    with pytest.raises(ValueError, match="'hf-vidtok-tests/no-such-repo-4f2a' is not an existing local path, and as the "
                                         "Hub dataset repo 'hf://datasets/hf-vidtok-tests/no-such-repo-4f2a'"):
        resolve_location("hf-vidtok-tests/no-such-repo-4f2a").files()
