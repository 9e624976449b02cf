"""Frame prediction: continue a video from its first frames (official LARP-AR-FP conditioning; EVATok:
condition blocks at a fixed assignment, forced as the generated prefix)."""

from __future__ import annotations

import itertools

import numpy as np
import torch
from diffusers import DiffusionPipeline

from ...data.transforms import repeat_to_num_frames
from ...hub.pipeline_mixin import PipelineHubMixin
from ...modules.input_checks import check_pixel_values
from ...models.evatok.modeling_evatok import EvatokTokenizer
from ...models.larp.modeling_larp import LarpTokenizer
from ...models.video_ar.modeling_video_ar import VideoARGenerator
from ..token_decoding import check_components, decode_generated, is_adaptive, pipeline_output
from ..video_processing import postprocess_video

__all__ = ["FramePredictionPipeline", "repeat_to_num_frames", "condition_assignment"]


def condition_assignment(levels, num_cond_blocks: int, num_tokens: int) -> list[int]:
    """Counts of the ``num_cond_blocks`` condition blocks summing to ``num_tokens``: the combination of
    ``levels`` with the most tokens in the earliest blocks (EVATok K600: 640 over 2 blocks -> (512, 128)).
    ValueError when no combination matches."""
    for combo in itertools.product(sorted(levels, reverse=True), repeat=int(num_cond_blocks)):
        if sum(combo) == num_tokens:
            return list(combo)
    raise ValueError(
        f"no {num_cond_blocks} token counts from {sorted(levels)} sum to the generator's {num_tokens} condition "
        "tokens (num_cond_tokens - 1); pass `condition_token_counts`"
    )


class FramePredictionPipeline(PipelineHubMixin, DiffusionPipeline):
    """Predict a whole clip from its first ``num_cond_frames`` frames.

    The context frames are repeated to the clip length, encoded with deterministic VQ, followed by the
    separator token, and the frame-prediction ``generator`` samples the tokens of the full clip (the
    context frames included, as in the official model), which the ``tokenizer`` decodes.

    With an :class:`~hf_vidtok.EvatokTokenizer` (and a variable-length generator) the blocks holding the
    context frames are encoded at a fixed assignment ``condition_token_counts`` (default: see
    :func:`condition_assignment`; the paper's (512, 128)); their tokens + separator are the condition and
    the generator samples the whole clip with those blocks' counts forced, the later blocks' lengths its
    own choice. ``num_tokens`` / ``token_counts`` of the output report them per video.
    """

    model_cpu_offload_seq = "tokenizer->generator->tokenizer"

    def __init__(self, tokenizer: LarpTokenizer | EvatokTokenizer, generator: VideoARGenerator):
        super().__init__()
        check_components(tokenizer, generator)
        if not generator.config.frame_prediction:
            raise ValueError("`generator` is class-conditional; use ClassToVideoPipeline")
        self.register_modules(tokenizer=tokenizer, generator=generator)

    def _clip_geometry(self) -> tuple[int, int, int, int]:
        """(channels, frames, height, width) of the tokenizer's clips."""
        cfg = self.tokenizer.config
        if is_adaptive(self.tokenizer):
            return (cfg.in_channels, cfg.num_frames, *cfg.image_hw)
        return cfg.in_channels, cfg.frame_num, cfg.input_size, cfg.input_size

    def _prepare_video(self, video) -> torch.Tensor:
        channels, _, height, width = self._clip_geometry()
        if isinstance(video, np.ndarray):
            if video.ndim == 4:
                video = video[None]
            if video.ndim != 5 or video.shape[-1] != channels:
                raise ValueError(f"numpy `video` must be (B, T, H, W, {channels}) or (T, H, W, C), got {video.shape}")
            video = torch.from_numpy(np.ascontiguousarray(video)).permute(0, 4, 1, 2, 3)
        if not torch.is_tensor(video):
            raise TypeError(f"`video` must be a torch.Tensor (B, C, T, H, W) or a numpy array, got {type(video).__name__}")
        if video.dim() == 4:
            video = video[None]
        if video.dim() != 5:
            raise ValueError(f"`video` must be (B, C, T, H, W) or (C, T, H, W), got shape {tuple(video.shape)}")
        if video.dtype == torch.uint8:
            video = video.float() / 255.0
        elif not video.is_floating_point():
            raise TypeError(f"`video` must be float in [0, 1] or uint8, got dtype {video.dtype}")
        return check_pixel_values(video, name="video", shape=(channels, None, height, width))

    def _condition_ids(self, context: torch.Tensor, num_cond_frames: int, condition_token_counts):
        """``(cond tokens (B, n), forced_prefix list | None)`` for the context clip (deterministic VQ)."""
        tokenizer = self.tokenizer.eval()
        context = context.to(tokenizer.device, tokenizer.dtype)
        if not is_adaptive(tokenizer):
            was_det = tokenizer.quantizer.eval_deterministic
            tokenizer.set_vq_eval_deterministic(True)  # the training-time conditioning (official sampling forgot it)
            try:
                return tokenizer.encode(context).indices, None
            finally:
                tokenizer.set_vq_eval_deterministic(was_det)
        tc = tokenizer.config
        num_cond_blocks = -(-int(num_cond_frames) // tc.temporal_patch_size)
        needed = self.generator.config.num_cond_tokens - 1
        if condition_token_counts is None:
            counts = condition_assignment(tc.token_levels, num_cond_blocks, needed)
        else:
            counts = [int(c) for c in condition_token_counts]
            if len(counts) != num_cond_blocks or sum(counts) != needed or any(c not in tc.token_levels for c in counts):
                raise ValueError(
                    f"`condition_token_counts` must be {num_cond_blocks} counts from {list(tc.token_levels)} (the blocks "
                    f"holding {num_cond_frames} frames) summing to {needed} (num_cond_tokens - 1), got {counts}"
                )
        assignment = tuple(counts) + (min(tc.token_levels),) * (tc.num_blocks - num_cond_blocks)
        indices = tokenizer.encode(context, assignment=assignment).indices
        return indices[:, :needed], counts

    @torch.no_grad()
    def __call__(
        self,
        video,
        num_cond_frames: int = 5,
        *,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        condition_token_counts: list[int] | None = None,
        max_total_tokens: int | None = None,
        output_type: str = "np",
        return_dict: bool = True,
    ):
        """Args:
            video: context clip(s) ``(B, C, T, H, W)`` float in [0, 1] (or uint8, or numpy ``(B, T, H, W, C)``)
                with at least ``num_cond_frames`` frames.
            num_cond_frames: number of leading frames used as context (official: 5 of 16).
            condition_token_counts: adaptive tokenizers: counts of the blocks holding the context frames.
            max_total_tokens: adaptive tokenizers: at most that many visual tokens per video.
        Returns:
            :class:`~hf_vidtok.pipelines.VideoPipelineOutput` with the predicted full clips (and ``num_tokens`` per clip), or
            a tuple ``(frames,)``.
        """
        if output_type not in ("np", "pt", "pil"):
            raise ValueError(f"`output_type` must be 'np', 'pt' or 'pil', got {output_type!r}")
        video = self._prepare_video(video)
        frames_total = self._clip_geometry()[1]
        if int(num_cond_frames) != num_cond_frames or not 1 <= num_cond_frames <= frames_total:
            raise ValueError(f"`num_cond_frames` must be an int in [1, {frames_total}], got {num_cond_frames}")
        if video.shape[2] < num_cond_frames:
            raise ValueError(f"`video` has {video.shape[2]} frames, fewer than num_cond_frames={num_cond_frames}")
        if not is_adaptive(self.tokenizer) and (condition_token_counts is not None or max_total_tokens is not None):
            raise ValueError("`condition_token_counts` / `max_total_tokens` need an adaptive (EVATok) tokenizer")
        context = repeat_to_num_frames(video[:, :, :num_cond_frames], frames_total)
        cond, forced = self._condition_ids(context, num_cond_frames, condition_token_counts)
        sep = torch.full((cond.shape[0], 1), self.generator.config.separator_token_id, dtype=cond.dtype, device=cond.device)
        cond_ids = torch.cat([cond, sep], dim=1).to(self.generator.device)
        length_kwargs = {} if forced is None else dict(forced_prefix=forced, max_total_tokens=max_total_tokens)
        with self.progress_bar(total=self.generator.config.max_seq_len) as bar:
            tokens = self.generator.generate(
                cond_ids=cond_ids, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator,
                step_callback=lambda step: bar.update(), **length_kwargs,
            )
        video, num_tokens, token_counts = decode_generated(self.tokenizer, self.generator, tokens)
        out = postprocess_video(video, output_type)
        self.maybe_free_model_hooks()
        return pipeline_output(out, num_tokens, token_counts, return_dict)
