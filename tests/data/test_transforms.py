import numpy as np
import pytest
import torch
from hf_vidtok.data import (
    VideoClipTransform,
    center_crop,
    random_horizontal_flip,
    resize_crop_uint8,
    resize_short_side,
    resized_shape,
    to_float_clip,
)


def test_resized_shape_follows_torchvision_rounding():
    # torchvision Resize(int): short side -> size, long side -> int(size * long / short)
    assert resized_shape(720, 1280, 128) == (128, 227)
    assert resized_shape(272, 640, 128) == (128, 301)
    assert resized_shape(144, 176, 128) == (128, 156)
    assert resized_shape(1280, 720, 128) == (227, 128)
    assert resized_shape(50, 50, 7) == (7, 7)
    with pytest.raises(ValueError, match="size"):
        resized_shape(10, 10, 0)


def test_resize_matches_pil_antialiased_bilinear():
    """torchvision's antialias=True is designed to match PIL's bilinear reduce: check against PIL."""
    pil = pytest.importorskip("PIL.Image")
    from PIL import ImageFilter

    Image = pil
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (61, 90, 3), dtype=np.uint8)
    img = np.array(Image.fromarray(img).filter(ImageFilter.SMOOTH))  # natural-image-like
    new_h, new_w = resized_shape(61, 90, 17)
    ref = np.asarray(Image.fromarray(img).resize((new_w, new_h), Image.BILINEAR)).astype(np.int16)
    t = torch.from_numpy(img).permute(2, 0, 1)[None]
    ours_u8 = resize_short_side(t, 17)[0].permute(1, 2, 0).numpy().astype(np.int16)
    ours_f = resize_short_side(t.float() / 255, 17)[0].permute(1, 2, 0).numpy() * 255
    assert ours_u8.shape == ref.shape == (17, 25, 3)
    assert np.abs(ours_u8 - ref).max() <= 2
    assert np.abs(ours_f - ref).max() <= 2.0
    assert np.abs(ours_f - ours_u8).max() <= 1.0  # uint8 kernel vs float kernel


def test_resize_noop_and_constant():
    x = torch.rand(2, 3, 8, 8)
    assert resize_short_side(x, 8) is x
    c = torch.full((1, 3, 30, 50), 0.25)
    out = resize_short_side(c, 9)
    assert out.shape == (1, 3, 9, 15)
    torch.testing.assert_close(out, torch.full_like(out, 0.25))
    with pytest.raises(TypeError):
        resize_short_side(torch.zeros(3, 8, 8), 4)


def test_center_crop_offsets_like_torchvision():
    x = torch.arange(5 * 7).reshape(1, 5, 7)
    out = center_crop(x, 2)
    # top = int(round((5 - 2) / 2)) = 2 (banker's rounding of 1.5), left = int(round(2.5)) = 2
    torch.testing.assert_close(out, x[:, 2:4, 2:4])
    with pytest.raises(ValueError, match="center-crop"):
        center_crop(x, 6)


def test_flip_is_the_same_for_the_whole_clip():
    clip = torch.rand(3, 4, 5, 6)
    flipped = random_horizontal_flip(clip, p=1.0)
    torch.testing.assert_close(flipped, clip.flip(-1))
    assert random_horizontal_flip(clip, p=0.0) is clip
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    outs1 = [random_horizontal_flip(clip, generator=g1) for _ in range(12)]
    outs2 = [random_horizontal_flip(clip, generator=g2) for _ in range(12)]
    flags = [torch.equal(o, clip.flip(-1)) for o in outs1]
    assert flags == [torch.equal(o, clip.flip(-1)) for o in outs2]
    assert 0 < sum(flags) < 12
    assert all(torch.equal(o, clip) or torch.equal(o, clip.flip(-1)) for o in outs1)
    with pytest.raises(ValueError, match="p must"):
        random_horizontal_flip(clip, p=2)


def test_to_float_and_full_transform():
    video = np.random.default_rng(1).integers(0, 256, (4, 30, 40, 3), dtype=np.uint8)
    f = to_float_clip(video)
    assert f.shape == (3, 4, 30, 40) and f.dtype == torch.float32
    torch.testing.assert_close(f[:, 2, 5, 7], torch.from_numpy(video[2, 5, 7]).float() / 255)
    out = VideoClipTransform(16)(video)
    assert out.shape == (3, 4, 16, 16) and 0 <= out.min() and out.max() <= 1
    slow = VideoClipTransform(16, resize_in_uint8=False)(video)
    assert (out - slow).abs().max() <= 1.0 / 255 + 1e-6
    u8 = resize_crop_uint8(video, 16)
    assert u8.shape == (4, 16, 16, 3) and u8.dtype == np.uint8
    torch.testing.assert_close(to_float_clip(u8), out)
    g = torch.Generator().manual_seed(0)
    flipped = [VideoClipTransform(16, random_flip=True, flip_p=1.0)(video, generator=g)]
    torch.testing.assert_close(flipped[0], out.flip(-1))
    same = VideoClipTransform(None)(video)
    assert same.shape == (3, 4, 30, 40)


def test_transform_input_checks():
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        to_float_clip(np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        to_float_clip(np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="0..255"):
        to_float_clip(torch.full((1, 2, 2, 3), 300))
    torch.testing.assert_close(to_float_clip(torch.full((1, 2, 2, 3), 255)), torch.ones(3, 1, 2, 2))
    with pytest.raises(TypeError, match="numpy array or torch.Tensor"):
        to_float_clip([[1]])
    with pytest.raises(ValueError, match="resolution"):
        VideoClipTransform(0)


def test_random_flip_clips_flips_the_drawn_clips_of_a_batch():
    from hf_vidtok.data import random_flip_clips

    x = torch.rand(6, 3, 2, 4, 5)
    draws = torch.rand(6, generator=torch.Generator().manual_seed(3)) < 0.5
    out = random_flip_clips(x, generator=torch.Generator().manual_seed(3))
    for i in range(6):
        assert torch.equal(out[i], x[i].flip(-1) if draws[i] else x[i])
    assert torch.equal(random_flip_clips(x, p=0.0), x)
    assert torch.equal(random_flip_clips(x, p=1.0), x.flip(-1))
    with pytest.raises(ValueError, match="pixel_values"):
        random_flip_clips(x[0])
