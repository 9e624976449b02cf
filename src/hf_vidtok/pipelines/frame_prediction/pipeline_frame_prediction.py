"""Frame prediction: continue a video from its first frames (official LARP-AR-FP conditioning)."""

from __future__ import annotations

import numpy as np
import torch
from diffusers import DiffusionPipeline

from ...hub.loading import PipelineHubMixin

from ...models.larp.modeling_larp import LarpTokenizer
from ...models.video_ar.modeling_video_ar import VideoARGenerator
from ...data.transforms import repeat_to_num_frames
from ..class_to_video.pipeline_class_to_video import check_components
from ..pipeline_output import VideoPipelineOutput
from ..video_processing import postprocess_video

__all__ = ["FramePredictionPipeline", "repeat_to_num_frames"]


class FramePredictionPipeline(PipelineHubMixin, DiffusionPipeline):
    """Predict a whole clip from its first ``num_cond_frames`` frames.

    The context frames are repeated to the clip length, encoded with deterministic VQ, followed by the
    separator token, and the frame-prediction ``generator`` samples the tokens of the full clip (the
    context frames included, as in the official model), which the ``tokenizer`` decodes.
    """

    model_cpu_offload_seq = "tokenizer->generator->tokenizer"

    def __init__(self, tokenizer: LarpTokenizer, generator: VideoARGenerator):
        super().__init__()
        check_components(tokenizer, generator)
        if not generator.config.frame_prediction:
            raise ValueError("`generator` is class-conditional; use ClassToVideoPipeline")
        self.register_modules(tokenizer=tokenizer, generator=generator)

    def _prepare_video(self, video) -> torch.Tensor:
        cfg = self.tokenizer.config
        if isinstance(video, np.ndarray):
            if video.ndim == 4:
                video = video[None]
            if video.ndim != 5 or video.shape[-1] != cfg.in_channels:
                raise ValueError(f"numpy `video` must be (B, T, H, W, {cfg.in_channels}) or (T, H, W, C), got {video.shape}")
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
        if video.shape[1] != cfg.in_channels or video.shape[3:] != (cfg.input_size, cfg.input_size):
            raise ValueError(
                f"`video` must be (B, {cfg.in_channels}, T, {cfg.input_size}, {cfg.input_size}), got {tuple(video.shape)}"
            )
        return video

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
        output_type: str = "np",
        return_dict: bool = True,
    ):
        """Args:
            video: context clip(s) ``(B, C, T, H, W)`` float in [0, 1] (or uint8, or numpy ``(B, T, H, W, C)``)
                with at least ``num_cond_frames`` frames.
            num_cond_frames: number of leading frames used as context (official: 5 of 16).
        Returns:
            :class:`VideoPipelineOutput` with the predicted full clips.
        """
        if output_type not in ("np", "pt", "pil"):
            raise ValueError(f"`output_type` must be 'np', 'pt' or 'pil', got {output_type!r}")
        video = self._prepare_video(video)
        frames_total = self.tokenizer.config.frame_num
        if int(num_cond_frames) != num_cond_frames or not 1 <= num_cond_frames <= frames_total:
            raise ValueError(f"`num_cond_frames` must be an int in [1, {frames_total}], got {num_cond_frames}")
        if video.shape[2] < num_cond_frames:
            raise ValueError(f"`video` has {video.shape[2]} frames, fewer than num_cond_frames={num_cond_frames}")
        context = repeat_to_num_frames(video[:, :, :num_cond_frames], frames_total)
        tokenizer = self.tokenizer.eval()
        was_det = tokenizer.quantizer.eval_deterministic
        tokenizer.set_vq_eval_deterministic(True)  # the training-time conditioning (official sampling forgot it)
        try:
            cond = tokenizer.encode(context.to(tokenizer.device, tokenizer.dtype)).indices
        finally:
            tokenizer.set_vq_eval_deterministic(was_det)
        sep = torch.full((cond.shape[0], 1), self.generator.config.separator_token_id, dtype=cond.dtype, device=cond.device)
        cond_ids = torch.cat([cond, sep], dim=1).to(self.generator.device)
        with self.progress_bar(total=self.generator.config.max_seq_len) as bar:
            tokens = self.generator.generate(
                cond_ids=cond_ids, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator,
                step_callback=lambda step: bar.update(),
            )
        out = postprocess_video(tokenizer.decode(tokens.to(tokenizer.device)), output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (out,)
        return VideoPipelineOutput(frames=out)
