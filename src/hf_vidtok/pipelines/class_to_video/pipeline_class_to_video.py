"""Class-conditional video generation: VideoARGenerator samples tokens, a LarpTokenizer (fixed length) or
an EvatokTokenizer (adaptive length, one length token per block) decodes them."""

from __future__ import annotations

import torch
from diffusers import DiffusionPipeline

from ...hub.pipeline_mixin import PipelineHubMixin
from ...models.evatok.modeling_evatok import EvatokTokenizer
from ...models.larp.modeling_larp import LarpTokenizer
from ...models.video_ar.modeling_video_ar import VideoARGenerator, class_label_ids
from ..token_decoding import check_components, decode_generated, pipeline_output
from ..video_processing import postprocess_video

__all__ = ["ClassToVideoPipeline"]


class ClassToVideoPipeline(PipelineHubMixin, DiffusionPipeline):
    """Generate videos of given classes (e.g. UCF-101 actions).

    Components: ``tokenizer`` (:class:`~hf_vidtok.LarpTokenizer`, or :class:`~hf_vidtok.EvatokTokenizer`
    with a variable-length generator: each video then has as many tokens as the generator chose, decoded
    with its own ``token_counts``) and ``generator`` (:class:`~hf_vidtok.VideoARGenerator`,
    class-conditional). Class names come from ``generator.config.id2label``. Saved and loaded as one
    folder with ``model_index.json`` (load it with ``ClassToVideoPipeline.from_pretrained``, after
    ``import hf_vidtok``).

    Example::

        pipe = ClassToVideoPipeline.from_pretrained("path/or/repo")
        frames = pipe(["ApplyEyeMakeup", 3], guidance_scale=1.25, generator=torch.Generator().manual_seed(0)).frames
        export_to_video(frames[0], "out.mp4", fps=8)
    """

    model_cpu_offload_seq = "generator->tokenizer"

    def __init__(self, tokenizer: LarpTokenizer | EvatokTokenizer, generator: VideoARGenerator):
        super().__init__()
        check_components(tokenizer, generator)
        if generator.config.frame_prediction:
            raise ValueError("`generator` is a frame-prediction model; use FramePredictionPipeline")
        self.register_modules(tokenizer=tokenizer, generator=generator)

    @property
    def labels(self) -> dict[str, int]:
        """Class name -> id, from the generator config's ``id2label``."""
        return {str(name): int(i) for i, name in self.generator.config.id2label.items()}

    def get_label_ids(self, label) -> list[int]:
        """Map class names and/or ids (a single one or a list) to ids
        (:func:`~hf_vidtok.models.video_ar.class_label_ids`): ``ValueError`` for unknown names and ids out of range,
        ``TypeError`` for bools, floats and other types."""
        return class_label_ids(label, self.generator.config, name="class_labels")

    @torch.no_grad()
    def __call__(
        self,
        class_labels,
        *,
        num_videos_per_label: int = 1,
        guidance_scale: float = 1.25,
        cfg_interval: int = -1,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        max_total_tokens: int | None = None,
        output_type: str = "np",
        return_dict: bool = True,
    ):
        """Generate ``len(class_labels) * num_videos_per_label`` videos (label-major order).

        Args:
            class_labels: an id, a class name, or a list of them.
            guidance_scale: classifier-free guidance (1 disables it; official UCF-101 setting 1.25).
            temperature, top_k, top_p: sampling (0 / 1 disable top-k / top-p).
            generator: a ``torch.Generator`` on the generator model's device, for reproducible videos.
            max_total_tokens: adaptive tokenizers: at most that many visual tokens per video.
            output_type: ``"np"`` (B, T, H, W, C), ``"pt"`` (B, T, C, H, W) or ``"pil"``.
        Returns:
            :class:`~hf_vidtok.pipelines.VideoPipelineOutput` (frames clamped to [0, 1], ``num_tokens`` per video and, for
            adaptive tokenizers, ``token_counts``), or a tuple ``(frames,)``.
        """
        if int(num_videos_per_label) != num_videos_per_label or num_videos_per_label < 1:
            raise ValueError(f"`num_videos_per_label` must be a positive int, got {num_videos_per_label}")
        if output_type not in ("np", "pt", "pil"):
            raise ValueError(f"`output_type` must be 'np', 'pt' or 'pil', got {output_type!r}")
        ids = self.get_label_ids(class_labels)
        device = self.generator.device
        labels = torch.tensor(ids, device=device).repeat_interleave(int(num_videos_per_label))
        gen_config = self.generator.config
        length_kwargs = {}
        if gen_config.is_variable_length:
            length_kwargs["max_total_tokens"] = max_total_tokens
        elif max_total_tokens is not None:
            raise ValueError("`max_total_tokens` needs an adaptive (EVATok) tokenizer and a variable-length generator")
        with self.progress_bar(total=gen_config.max_seq_len) as bar:
            tokens = self.generator.generate(
                class_labels=labels,
                cfg_scale=guidance_scale,
                cfg_interval=cfg_interval,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                generator=generator,
                step_callback=lambda step: bar.update(),
                **length_kwargs,
            )
        video, num_tokens, token_counts = decode_generated(self.tokenizer, self.generator, tokens)
        frames = postprocess_video(video, output_type)
        self.maybe_free_model_hooks()
        return pipeline_output(frames, num_tokens, token_counts, return_dict)
