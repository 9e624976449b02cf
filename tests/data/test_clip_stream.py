"""hf_vidtok.data.clip_stream: sharded, resumable clip batches (moved from the training utilities)."""

from __future__ import annotations

import pytest
import torch

from hf_vidtok.data import ShardedClipStream


def _reader(files_per_shard: dict[int, int], log: list | None = None):
    def read(shard, num_shards, epoch):
        if log is not None:
            log.append((shard, epoch))
        for i in range(files_per_shard.get(shard, 2)):
            yield {"id": (epoch, shard, i)}

    return read


def _collate(examples):
    return {"ids": [e["id"] for e in examples]}


def _stream(process_index=0, num_processes=1, num_workers=0, num_shards=7, batch_size=3, reader=None):
    return ShardedClipStream(
        reader or _reader({}), num_shards, batch_size=batch_size, collate_fn=_collate,
        process_index=process_index, num_processes=num_processes, num_workers=num_workers, seed=5,
    )


def _take(stream, n, workers=0):
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=workers, generator=torch.Generator())
    out = []
    for batch in loader:
        stream.mark_consumed(batch["stream_state"], len(batch["ids"]))
        out.append([tuple(int(v) for v in i) for i in batch["ids"]])
        if len(out) == n:
            break
    return out


def test_stream_splits_shards_across_processes_and_workers_without_duplicates():
    num_shards = 7
    seen = []
    for rank in range(2):
        for w in range(2):
            s = _stream(rank, 2, 2, num_shards)
            seen += s.shards_for(s.stream_id(w), epoch=0)
    assert sorted(seen) == list(range(num_shards))
    assert [_stream(r, 2, 2, num_shards).files_per_epoch() for r in range(2)] == [4, 3]
    s = _stream(0, 1, 0, num_shards)
    assert s.shards_for(0, 0) != s.shards_for(0, 1)  # reshuffled every epoch
    assert sorted(s.shards_for(0, 1)) == list(range(num_shards))


@pytest.mark.parametrize("workers", [0, 2])
def test_stream_resume_is_exact(workers):
    full = _take(_stream(num_workers=workers), 9, workers)
    first = _stream(num_workers=workers)
    head = _take(first, 4, workers)
    state = first.state_dict()
    log = []
    resumed = _stream(num_workers=workers, reader=_reader({}, log))
    resumed.load_state_dict(state)
    tail = _take(resumed, 5, workers)
    assert head + tail == full
    flat = [i for b in full for i in b]
    epoch0 = [i for i in flat if i[0] == 0]
    assert len(epoch0) == len(set(epoch0)) == 14  # every clip of epoch 0 exactly once
    if workers == 0:
        # 12 clips = 6 files were consumed: the resumed stream re-opens only the 6th (to skip its clips),
        # never the 5 files finished before the checkpoint
        order = resumed.shards_for(0, 0)
        assert [s for s, e in log if e == 0] == order[5:]


def test_stream_stops_when_every_file_is_bad_and_errors_up_front():
    stream = _stream(reader=_reader({i: 0 for i in range(7)}))
    assert _take(stream, 3) == []
    with pytest.raises(ValueError, match="empty"):
        _stream(num_shards=0)
    with pytest.raises(ValueError, match="2 processes"):
        _stream(0, 2, 0, num_shards=1)


def test_stream_counts_files_without_clips():
    stream = _stream(reader=_reader({0: 0, 1: 0}), num_shards=4, batch_size=2)
    batches = _take(stream, 4)
    assert len(batches) == 4  # 8 clips: the 2 good files of epochs 0 and 1
    assert stream.skipped_files == 2  # distinct bad files, not one per epoch
    resumed = _stream(reader=_reader({0: 0, 1: 0}), num_shards=4, batch_size=2)
    resumed.load_state_dict(stream.state_dict())
    assert resumed.skipped_files == 2


@pytest.mark.parametrize("clips_per_file", [2, 3])
def test_stream_resumes_when_a_checkpoint_ends_an_epoch_of_one_file(clips_per_file):
    """One file per stream and epoch (3 files, 2 processes: process 1 reads one file an epoch) and a batch that ends
    exactly with that file: the resumed stream re-reads the finished file, finds every clip already consumed and
    must go on to the next epoch (it used to stop as if every file were unreadable)."""
    def make():
        return _stream(1, 2, 0, num_shards=3, batch_size=clips_per_file, reader=_reader({i: clips_per_file for i in range(3)}))

    full = _take(make(), 6)
    for cut in range(1, 6):
        first = make()
        head = _take(first, cut)
        resumed = make()
        resumed.load_state_dict({"per_process": [first.local_state_dict(), first.local_state_dict()]})
        assert head + _take(resumed, 6 - cut) == full, cut
    epochs = [b[0][0] for b in full]
    assert epochs == sorted(epochs) and len(set(epochs)) == 6  # one batch (one file) per epoch
