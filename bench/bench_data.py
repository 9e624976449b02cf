"""Data-path throughput: prints one JSON object per measurement.

1. ``read_video_clip``: clips/s of random 16-frame clips (+ resize/crop to 128) from each sample video.
2. The streaming dataset (``load_video_dataset(..., streaming=True)``) over the sample videos through a
   ``DataLoader`` with ``collate_video_clips``, with 0, 1 and 2 workers: clips/s of 16x128x128 clips.
3. Seeking vs decoding from the start: 16-frame clips late in a long video (the bikes sample looped
   to 1000 frames, h264 with a key frame every 50 frames).
4. Probing cost per file: a fresh probe (demux + decode of the last GOP; the demux alone is what the
   probe cost before it checked that the end decodes), and the cached probe in process and from the
   on-disk JSON cache (what later epochs and DataLoader workers pay).
5. Where the data lives (:func:`bench_data_sources`): clips/s of the same streaming dataset from local video
   files, from local webdataset / Parquet shards (``pack_videos``, one video per shard) and from the same shards
   streamed over HTTP (a loopback server with Range requests, read through fsspec: the remote code path, not a
   network's bandwidth), with 0 and 2 DataLoader workers; every source must give the local files' clips
   (``clips_identical``). ``cold_s``: the first pass with empty probe caches; ``clips_per_s_*``: later passes.

Usage: ``python bench/bench_data.py [--repeats 3] [--quick] [--only sources]``. CPU only; run it on an idle machine.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch


def emit(**kw):
    kw.setdefault("torch_threads", torch.get_num_threads())
    kw.setdefault("cpu_count", os.cpu_count())
    kw.setdefault("machine", platform.machine())
    print(json.dumps(kw), flush=True)


def bench_read_video_clip(videos, repeats, clips_per_video):
    from hf_vidtok.data import read_video_clip, resize_crop_uint8

    for path in videos:
        rates = []
        for r in range(repeats):
            rng = np.random.default_rng(r)
            t0 = time.perf_counter()
            for _ in range(clips_per_video):
                clip = read_video_clip(path, 16, rng=rng)
                resize_crop_uint8(clip, 128)
            rates.append(clips_per_video / (time.perf_counter() - t0))
        emit(
            bench="read_video_clip", video=Path(path).name, num_frames=16, resolution=128,
            clips=clips_per_video, clips_per_s_median=round(statistics.median(rates), 2),
            clips_per_s_best=round(max(rates), 2),
        )


def bench_stream(videos, repeats, clips_per_video, workers_list):
    from hf_vidtok.data import collate_video_clips, load_video_dataset

    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "samples"
        folder.mkdir()
        for p in videos:
            (folder / Path(p).name).symlink_to(p)
        for workers in workers_list:
            rates = []
            for r in range(repeats):
                ds = load_video_dataset(d, num_frames=16, resolution=128, clips_per_video=clips_per_video, streaming=True, seed=r)
                loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=workers, collate_fn=collate_video_clips)
                t0 = time.perf_counter()
                n = 0
                for batch in loader:
                    assert batch["pixel_values"].shape[1:] == (3, 16, 128, 128)
                    n += batch["pixel_values"].shape[0]
                rates.append(n / (time.perf_counter() - t0))
            emit(
                bench="streaming_dataset", videos=len(videos), dataloader_workers=workers, clips=n, batch_size=4,
                num_frames=16, resolution=128, clips_per_s_median=round(statistics.median(rates), 2),
                clips_per_s_best=round(max(rates), 2), note="includes worker start-up; one shard per file",
            )


def make_long_video(src, dst, loops=4, keyint=50):
    import av

    with av.open(str(src)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    h, w = frames[0].shape[:2]
    out = av.open(str(dst), "w")
    s = out.add_stream("libx264", rate=25, options={"g": str(keyint), "keyint_min": str(keyint), "preset": "veryfast", "crf": "23"})
    s.width, s.height, s.pix_fmt = w, h, "yuv420p"
    for _ in range(loops):
        for img in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
    for p in s.encode():
        out.mux(p)
    out.close()
    return len(frames) * loops, (h, w)


def decode_from_start(path, indices):
    """Baseline without seeking: decode sequentially up to the last wanted frame."""
    import av

    wanted, out = set(indices), {}
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        stream.thread_type = "SLICE"
        stream.codec_context.thread_count = 1
        for i, f in enumerate(c.decode(stream)):
            if i in wanted:
                out[i] = f.to_ndarray(format="rgb24")
            if i >= max(indices):
                break
    return np.stack([out[i] for i in indices])


def bench_seek(bikes, repeats):
    from hf_vidtok.data import read_video_clip

    with tempfile.TemporaryDirectory() as d:
        long = Path(d) / "bikes_x4.mp4"
        n, (h, w) = make_long_video(bikes, long)
        read_video_clip(long, 16, start=0)  # index the file once (the dataset caches it too)
        for start in (n // 2, n - 16 - 7):
            idx = list(range(start, start + 16))
            seek_t, full_t = [], []
            for _ in range(repeats):
                t0 = time.perf_counter()
                a = read_video_clip(long, 16, start=start)
                seek_t.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                b = decode_from_start(long, idx)
                full_t.append(time.perf_counter() - t0)
                assert np.array_equal(a, b), "seek and sequential decode disagree"
            emit(
                bench="seek_vs_decode_from_start", video=f"bikes looped to {n} frames ({w}x{h}, h264, key frame every 50)",
                start_frame=start, num_frames=16, seek_s_median=round(statistics.median(seek_t), 4),
                from_start_s_median=round(statistics.median(full_t), 4),
                speedup=round(statistics.median(full_t) / statistics.median(seek_t), 2), frames_identical=True,
            )


def bench_probe(videos, repeats):
    from hf_vidtok.data import VideoFile, probe_video, video_reader

    def median_s(fn):
        times = []
        for _ in range(max(repeats, 3)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    def from_disk(path):
        video_reader._cache.clear()
        return VideoFile(path).index

    for path in videos:
        index = probe_video(path, use_cache=False)
        VideoFile(path)  # fills both caches
        emit(
            bench="probe", video=Path(path).name, frames=index.num_frames, key_frames=len(index.keyframe_pts),
            probe_s_median=round(median_s(lambda: probe_video(path, use_cache=False)), 4),
            demux_only_s_median=round(median_s(lambda: video_reader._scan_packets(str(path))), 4),
            cached_in_process_s_median=round(median_s(lambda: VideoFile(path).index), 6),
            cached_on_disk_s_median=round(median_s(lambda: from_disk(path)), 6),
        )


@contextlib.contextmanager
def serve_folder(folder):
    """A loopback HTTP server of ``folder`` that answers ``Range`` requests (what a remote store does); yields its URL."""
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class RangeHandler(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send_head(self):
            spec = self.headers.get("Range", "")
            path = self.translate_path(self.path)
            if not spec.startswith("bytes=") or not os.path.isfile(path):
                return super().send_head()
            size = os.path.getsize(path)
            start, _, end = spec[len("bytes="):].partition("-")
            start, end = (size - int(end), size - 1) if start == "" else (int(start), min(int(end or size - 1), size - 1))
            f = open(path, "rb")
            f.seek(start)
            self.send_response(206)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            self._left = end - start + 1
            return f

        def copyfile(self, source, outputfile):
            left = getattr(self, "_left", None)
            if left is None:
                return super().copyfile(source, outputfile)
            while left > 0:
                chunk = source.read(min(left, 1 << 16))
                if not chunk:
                    break
                outputfile.write(chunk)
                left -= len(chunk)
            self._left = None

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _stream_pass(data_dir, layout, workers, clips_per_video, seed):
    """(clips, seconds, digest of every clip's key, start and pixels) of one pass over the streaming dataset."""
    from hf_vidtok.data import collate_video_clips, load_video_dataset

    ds = load_video_dataset(data_dir, layout=layout, num_frames=16, resolution=128, clips_per_video=clips_per_video,
                            streaming=True, seed=seed)

    def collate(examples):
        batch = collate_video_clips(examples)
        batch["ids"] = [(ex["key"], int(ex["start_frame"])) for ex in examples]
        return batch

    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=workers, collate_fn=collate)
    t0 = time.perf_counter()
    seen = []
    for batch in loader:
        assert batch["pixel_values"].shape[1:] == (3, 16, 128, 128)
        for (key, start), clip in zip(batch["ids"], batch["pixel_values"]):
            seen.append((key, start, hashlib.sha1(clip.numpy().tobytes()).hexdigest()))
    seconds = time.perf_counter() - t0
    return len(seen), seconds, hashlib.sha1(json.dumps(sorted(seen)).encode()).hexdigest()


def bench_data_sources(videos, *, repeats=3, clips_per_video=8, workers_list=(0, 2)) -> list:
    """Clips/s of the same videos as local files, local webdataset / Parquet shards and shards streamed over HTTP
    (see the module docstring); returns one dict per (source, workers)."""
    from hf_vidtok.data import pack_videos, video_reader

    out = []
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "files" / "samples"
        folder.mkdir(parents=True)
        for p in videos:
            (folder / Path(p).name).symlink_to(p)
        for fmt in ("webdataset", "parquet"):
            pack_videos(folder.parent, Path(d) / "shards" / fmt, format=fmt, max_videos_per_shard=1)
        with serve_folder(Path(d) / "shards") as url:
            sources = [("local_files", folder.parent, "folder"),
                       ("local_webdataset", Path(d) / "shards" / "webdataset", "webdataset"),
                       ("local_parquet", Path(d) / "shards" / "parquet", "parquet"),
                       ("streamed_webdataset", f"{url}/webdataset/data", "webdataset"),
                       ("streamed_parquet", f"{url}/parquet/data", "parquet")]
            reference = None
            for workers in workers_list:
                for name, data_dir, layout in sources:
                    video_reader._cache.clear()  # cold: empty probe caches (a fresh disk cache, inherited by workers)
                    os.environ["HF_VIDTOK_PROBE_CACHE"] = tempfile.mkdtemp(dir=d)
                    n, cold, digest = _stream_pass(data_dir, layout, workers, clips_per_video, seed=0)
                    reference = reference or digest
                    rates = [n / _stream_pass(data_dir, layout, workers, clips_per_video, seed=0)[1] for _ in range(repeats)]
                    out.append(dict(
                        bench="data_sources", source=name, layout=layout, videos=len(videos), shards=len(videos),
                        dataloader_workers=workers, clips=n, batch_size=4, num_frames=16, resolution=128,
                        cold_s=round(cold, 3), clips_per_s_median=round(statistics.median(rates), 2),
                        clips_per_s_best=round(max(rates), 2), clips_identical=digest == reference,
                        note="streamed = loopback HTTP server with Range requests through fsspec",
                    ))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clips_per_video", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="1 repeat, 2 clips per video")
    parser.add_argument("--only", choices=("probe", "read", "stream", "seek", "sources"), default=None,
                        help="run one measurement group only")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.clips_per_video = 1, 2
    from hf_vidtok.data import sample_videos

    videos = sample_videos()
    with tempfile.TemporaryDirectory() as cache:  # a fresh on-disk probe cache (workers inherit it)
        os.environ.setdefault("HF_VIDTOK_PROBE_CACHE", cache)
        run_all(videos, args)


def run_all(videos, args):
    only = getattr(args, "only", None)
    if only in (None, "probe"):
        bench_probe(videos, args.repeats)
    if only in (None, "read"):
        bench_read_video_clip(videos, args.repeats, args.clips_per_video)
    if only in (None, "stream"):
        bench_stream(videos, args.repeats, args.clips_per_video, (0, 1, 2))
    if only in (None, "seek"):
        bench_seek(videos[1], args.repeats)
    if only in (None, "sources"):
        for record in bench_data_sources(videos, repeats=args.repeats, clips_per_video=args.clips_per_video):
            emit(**record)


if __name__ == "__main__":
    main()
