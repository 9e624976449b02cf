"""hf_vidtok.modules.input_checks: the one validation of pixel inputs, and every model / pipeline entry point
that uses it (NaN, inf, range, dtype, rank, shape, empty batch)."""

import numpy as np
import pytest
import torch

from hf_vidtok.modules.input_checks import check_pixel_values


def _video(shape=(2, 3, 4, 16, 16), seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def test_valid_input_is_returned_unchanged():
    x = _video()
    assert check_pixel_values(x, shape=(3, 4, 16, 16)) is x
    assert check_pixel_values(x.double(), shape=(3, None, None, 16)).dtype == torch.float64
    edge = torch.zeros(1, 3, 2, 4, 4)
    edge[..., 0] = 1.0
    check_pixel_values(edge)  # both ends of [0, 1] are allowed


@pytest.mark.parametrize(
    "value, error, message",
    [
        (float("nan"), ValueError, "contains NaN"),
        (float("inf"), ValueError, r"must lie in \[0, 1\].*inf"),
        (-float("inf"), ValueError, r"must lie in \[0, 1\]"),
        (1.5, ValueError, r"must lie in \[0, 1\], got values in \[.*, 1.5\]"),
        (-0.25, ValueError, r"must lie in \[0, 1\], got values in \[-0.25"),
    ],
)
def test_one_bad_pixel_is_rejected(value, error, message):
    x = _video()
    x[1, 2, 3, 4, 5] = value
    with pytest.raises(error, match=message):
        check_pixel_values(x, name="video")


def test_tolerance_dtype_rank_shape_and_batch_errors():
    x = _video()
    x[0, 0, 0, 0, 0] = 1.0
    check_pixel_values(x + 5e-5, range_tolerance=1e-4)
    with pytest.raises(ValueError, match="must lie"):
        check_pixel_values(x + 2e-4, range_tolerance=1e-4)
    check_pixel_values(x * 3, check_range=False)
    with pytest.raises(TypeError, match=r"`pixel_values` must be a floating-point tensor.*uint8.*x.float\(\) / 255"):
        check_pixel_values((x * 255).to(torch.uint8))
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        check_pixel_values(np.zeros((1, 3, 4, 16, 16), np.float32))
    with pytest.raises(ValueError, match=r"5 dims \(B, C, T, H, W\)"):
        check_pixel_values(x[0])
    with pytest.raises(ValueError, match="at least one clip"):
        check_pixel_values(x[:0])
    with pytest.raises(ValueError, match="must have 1 channels in dim 1"):
        check_pixel_values(x, shape=(1, None, None, None))
    with pytest.raises(ValueError, match="must have 8 frames in dim 2"):
        check_pixel_values(x, shape=(3, 8, 16, 16))
    with pytest.raises(ValueError, match=r"frames must be 16x8 \(H x W\).*got 16x16"):
        check_pixel_values(x, shape=(3, 4, 16, 8))


def _nan_clip(shape):
    x = torch.rand(*shape)
    x.view(-1)[7] = float("nan")
    return x


def test_every_model_rejects_nan_range_and_integer_pixels():
    """LarpTokenizer.encode accepted NaN (every token became 0) and values outside [0, 1]; EvatokRouter.select
    accepted NaN and uint8 clips. All entry points now share one check."""
    from hubtest_utils import tiny_evatok_router, tiny_evatok_tokenizer, tiny_tokenizer

    larp, evatok, router = tiny_tokenizer(), tiny_evatok_tokenizer(router=True), tiny_evatok_router()
    shape = (2, 3, 4, 16, 16)
    calls = [larp.encode, larp.forward, evatok.encode, router.forward, router.select]
    for call in calls:
        with pytest.raises(ValueError, match="contains NaN"):
            call(_nan_clip(shape))
        with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
            call(torch.rand(*shape) * 2)
        with pytest.raises(TypeError, match="floating-point"):
            call((torch.rand(*shape) * 255).to(torch.uint8))


def test_pipelines_reject_nan_video():
    from hubtest_utils import tiny_generator, tiny_tokenizer

    from hf_vidtok.pipelines import FramePredictionPipeline

    generator = tiny_generator(frame_prediction=True)
    pipe = FramePredictionPipeline(tokenizer=tiny_tokenizer(), generator=generator)
    pipe.set_progress_bar_config(disable=True)
    with pytest.raises(ValueError, match="`video` contains NaN"):
        pipe(_nan_clip((1, 3, 4, 16, 16)), num_cond_frames=2)
    with pytest.raises(ValueError, match=r"`video` must lie in \[0, 1\]"):
        pipe(torch.rand(1, 3, 4, 16, 16) + 1, num_cond_frames=2)
