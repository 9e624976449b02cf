import os
from pathlib import Path

import pytest

from hf_vidtok.data import canonical_split, list_videos


def _touch(path: Path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_canonical_split():
    assert canonical_split("val") == "validation" and canonical_split("TRAIN") == "train"
    with pytest.raises(ValueError, match="split"):
        canonical_split("dev")


def test_folder_layout_flat_and_with_splits(tmp_path):
    flat = tmp_path / "flat"
    for rel in ["zebra/a.mp4", "ant/b.AVI", "ant/sub/c.mkv", "ant/notes.txt", "ant/.hidden.mp4", "loose.mp4"]:
        _touch(flat / rel)
    lst = list_videos("folder", flat)
    assert lst.class_names == ["ant", "zebra"]
    assert sorted((e.key, e.label) for e in lst.splits["train"]) == [("ant/b.AVI", 0), ("ant/sub/c.mkv", 0), ("zebra/a.mp4", 1)]
    assert all(Path(e.path).is_absolute() for e in lst.splits["train"])
    assert list(lst.splits) == ["train"]

    kin = tmp_path / "kinetics"
    for rel in ["train/run/a.mp4", "train/jump/b.mp4", "val/swim/c.webm", "val/run/d.mp4"]:
        _touch(kin / rel)
    lst = list_videos("folder", kin)
    assert lst.class_names == ["jump", "run", "swim"]  # union over splits keeps labels consistent
    assert sorted(lst.splits) == ["train", "validation"]
    assert sorted((e.key, e.label) for e in lst.splits["validation"]) == [("val/run/d.mp4", 1), ("val/swim/c.webm", 2)]
    assert len(list_videos("folder", kin, extensions=["webm"]).splits["validation"]) == 1


def _ucf(tmp_path, crlf=True):
    root = tmp_path / "UCF101"
    nl = "\r\n" if crlf else "\n"
    classes = ["ApplyEyeMakeup", "Archery", "YoYo"]
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text(nl.join(f"{i + 1} {c}" for i, c in enumerate(classes)) + nl)
    (lists / "trainlist01.txt").write_text(
        nl.join(["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1", "YoYo/v_YoYo_g09_c02.avi 3"]) + nl
    )
    (lists / "testlist01.txt").write_text(nl.join(["Archery/v_Archery_g01_c01.avi", "YoYo/v_YoYo_g01_c01.avi"]) + nl)
    for c in classes:
        (root / "UCF-101" / c).mkdir(parents=True)
    return root


def test_ucf101_layout(tmp_path):
    root = _ucf(tmp_path)
    lst = list_videos("ucf101", root)
    assert lst.class_names == ["ApplyEyeMakeup", "Archery", "YoYo"]
    assert [(e.key, e.label) for e in lst.splits["train"]] == [
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", 0),
        ("YoYo/v_YoYo_g09_c02.avi", 2),
    ]
    assert [(e.key, e.label) for e in lst.splits["test"]] == [("Archery/v_Archery_g01_c01.avi", 1), ("YoYo/v_YoYo_g01_c01.avi", 2)]
    assert lst.splits["test"][0].path == str((root / "UCF-101" / "Archery" / "v_Archery_g01_c01.avi"))
    with pytest.raises(ValueError, match="trainlist02.txt"):
        list_videos("ucf101", root, fold=2)
    with pytest.raises(ValueError, match="fold"):
        list_videos("ucf101", root, fold=4)
    (root / "ucfTrainTestlist" / "classInd.txt").unlink()
    with pytest.raises(ValueError, match="classInd.txt"):
        list_videos("ucf101", root)


def test_csv_layouts(tmp_path):
    (tmp_path / "videos").mkdir()
    larp = tmp_path / "ucf_train.csv"
    larp.write_text("id,path,action,label\n0,videos/a.avi,Archery,1\n1,videos/b.avi,ApplyEyeMakeup,0\n2,videos/c.avi,Archery,1\n")
    lst = list_videos("csv", larp, split="train")
    assert lst.class_names == ["ApplyEyeMakeup", "Archery"]
    assert [(e.key, e.label) for e in lst.splits["train"]] == [("videos/a.avi", 1), ("videos/b.avi", 0), ("videos/c.avi", 1)]
    assert lst.splits["train"][0].path == str((tmp_path / "videos" / "a.avi"))

    named = tmp_path / "named.csv"
    named.write_text("path,label,caption\n/abs/x.mp4,dog,a dog runs\ny.mp4,cat,\nz.mp4,,no label\n")
    lst = list_videos("csv", named, split="validation", video_root=tmp_path / "videos")
    assert lst.class_names == ["cat", "dog"] and lst.has_caption
    ents = lst.splits["validation"]
    assert [(e.label, e.caption) for e in ents] == [(1, "a dog runs"), (0, ""), (-1, "no label")]
    assert ents[0].path == "/abs/x.mp4" and ents[1].path == str((tmp_path / "videos" / "y.mp4"))

    plain = tmp_path / "plain.csv"
    plain.write_text("path\nq.mp4\n")
    lst = list_videos("csv", f"{plain}+{larp}")
    assert lst.class_names == ["ApplyEyeMakeup", "Archery"] and len(lst.splits["train"]) == 4
    assert lst.splits["train"][0].label == -1

    d = tmp_path / "splits"
    d.mkdir()
    (d / "train.csv").write_text("path,label\na.mp4,0\n")
    (d / "val.csv").write_text("path,label\nb.mp4,2\n")
    lst = list_videos("csv", d)
    assert sorted(lst.splits) == ["train", "validation"] and lst.class_names == ["0", "1", "2"]

    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\na.mp4,0\n")
    with pytest.raises(ValueError, match="no 'path' column"):
        list_videos("csv", bad)
    with pytest.raises(ValueError, match="does not exist"):
        list_videos("csv", f"{plain}+{tmp_path / 'nope.csv'}")


def test_keys_are_relative_to_the_data_root_wherever_it_lies(tmp_path):
    """Keys seed the clip sampling: a CSV that lists its videos by absolute path (as the training script's
    sample-data CSVs do) gives the same keys in any folder; folder and ucf101 keys are relative too."""
    keys = []
    for where in ("run_a/out", "elsewhere/deeper/run_b"):
        root = tmp_path / where
        (root / "sample_data" / "train").mkdir(parents=True)
        csv_path = root / "sample_data" / "train.csv"
        rows = [root / "sample_data" / "train" / "bikes.mp4", root / "sample_data" / "train" / ".." / "x" / "c.mp4"]
        outside = tmp_path / "shared" / "carphone.mp4"
        csv_path.write_text("path\n" + "".join(f"{p}\n" for p in [*rows, outside]) + "train/rel.mp4\n")
        lst = list_videos("csv", csv_path, split="train")
        keys.append([e.key for e in lst.splits["train"]])
        assert [e.path for e in lst.splits["train"]][:2] == [str(rows[0]), str(root / "sample_data" / "x" / "c.mp4")]
        # a video_root moves the base of relative keys
        lst = list_videos("csv", csv_path, split="train", video_root=root / "sample_data" / "train")
        assert [e.key for e in lst.splits["train"]] == ["bikes.mp4", f"{where}/sample_data/x/c.mp4", "shared/carphone.mp4", "train/rel.mp4"]
        (root / "folder" / "cls" / "sub").mkdir(parents=True)
        (root / "folder" / "cls" / "sub" / "v.mp4").write_bytes(b"")
        assert [e.key for e in list_videos("folder", root / "folder").splits["train"]] == ["cls/sub/v.mp4"]
    # under the CSV's folder: relative to it; outside it: relative to the deepest folder holding them all
    assert keys[0] == keys[1] == ["train/bikes.mp4", "x/c.mp4", "carphone.mp4", "train/rel.mp4"]
    lst = list_videos("csv", named_csv(tmp_path, ["/data/ucf/a/v1.avi", "/data/ucf/b/v2.avi", "/data/k600/v3.mp4"]))
    assert [e.key for e in lst.splits["train"]] == ["ucf/a/v1.avi", "ucf/b/v2.avi", "k600/v3.mp4"]
    assert all(not os.path.isabs(e.key) for e in lst.splits["train"])


def named_csv(folder, paths):
    path = folder / "listing.csv"
    path.write_text("path\n" + "".join(f"{p}\n" for p in paths))
    return path


def test_layout_errors(tmp_path):
    with pytest.raises(ValueError, match="layout must be one of"):
        list_videos("imagenet", tmp_path)
    with pytest.raises(ValueError, match="not an existing directory"):
        list_videos("folder", tmp_path / "missing")
    with pytest.raises(ValueError, match="no class sub-folders"):
        list_videos("folder", tmp_path)
    with pytest.raises(ValueError, match="neither a CSV file nor a directory"):
        list_videos("csv", tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="no train.csv"):
        list_videos("csv", tmp_path)


def _mirror(local_root: Path, prefix: str) -> str:
    """Copy a local folder into fsspec's in-memory file system; returns its memory:// URL."""
    import fsspec

    fs = fsspec.filesystem("memory")
    for p in sorted(local_root.rglob("*")):
        if p.is_file():
            fs.pipe(f"/{prefix}/{p.relative_to(local_root).as_posix()}", p.read_bytes())
    return f"memory://{prefix}"


@pytest.mark.parametrize("split_folders", [False, True])
def test_remote_folder_layout_lists_what_the_local_one_lists(tmp_path, split_folders):
    pytest.importorskip("fsspec")
    rels = ["zebra/a.mp4", "ant/b.AVI", "ant/sub/c.mkv", "ant/sub.mp4", "ant/notes.txt", "ant/.hidden.mp4", "loose.mp4",
            ".cache/x/y.mp4"]
    if split_folders:
        rels = [f"train/{r}" for r in rels] + ["val/swim/c.webm", "val/ant/d.mp4"]
    for rel in rels:
        _touch(tmp_path / "d" / rel)
    local = list_videos("folder", tmp_path / "d")
    remote = list_videos("folder", _mirror(tmp_path / "d", f"layout-{split_folders}"))
    assert remote.class_names == local.class_names and list(remote.splits) == list(local.splits)
    for split in local.splits:
        assert [(e.key, e.label) for e in remote.splits[split]] == [(e.key, e.label) for e in local.splits[split]]
        assert all(e.path == f"memory://layout-{split_folders}/{e.key}" and e.size == 1 and e.version
                   for e in remote.splits[split])


def test_remote_csv_layout(tmp_path):
    pytest.importorskip("fsspec")
    d = tmp_path / "csvs"
    for rel in ["clips/a.mp4", "clips/b.mp4", "clips/c.mp4"]:
        _touch(d / rel, b"xyz")
    (d / "train.csv").write_text("path,label,caption\nclips/a.mp4,run,first\nclips/b.mp4,jump,\n")
    (d / "val.csv").write_text("path,label\nclips/c.mp4,run\nmemory://elsewhere/z.mp4,jump\n")
    local = list_videos("csv", d)
    remote = list_videos("csv", _mirror(d, "csv-layout"))
    assert remote.class_names == local.class_names == ["jump", "run"] and remote.has_caption
    assert [(e.key, e.label, e.caption) for e in remote.splits["train"]] == [("clips/a.mp4", 1, "first"), ("clips/b.mp4", 0, "")]
    assert [(e.key, e.label) for e in remote.splits["train"]] == [(e.key, e.label) for e in local.splits["train"]]
    val = remote.splits["validation"]
    assert [e.path for e in val] == ["memory://csv-layout/clips/c.mp4", "memory://elsewhere/z.mp4"]
    assert val[0].size == 3 and val[1].size is None and val[1].key == "z.mp4"  # outside the CSV's folder: its name
    single = list_videos("csv", "memory://csv-layout/train.csv", split="test")
    assert list(single.splits) == ["test"] and len(single.splits["test"]) == 2
    with pytest.raises(ValueError, match="ucf101 layout needs a local folder"):
        list_videos("ucf101", "memory://csv-layout")
