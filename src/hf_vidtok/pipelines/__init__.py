"""Diffusers-style pipelines (needs the `pipelines` extra: ``pip install hf_vidtok[pipelines]``)."""

try:
    import diffusers  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("hf_vidtok.pipelines needs diffusers: pip install 'hf_vidtok[pipelines]'") from e

from .class_to_video import ClassToVideoPipeline
from ..data.transforms import repeat_to_num_frames
from .frame_prediction import FramePredictionPipeline
from .pipeline_output import VideoPipelineOutput
from .video_export import export_to_video
from .video_processing import postprocess_video

__all__ = [
    "ClassToVideoPipeline",
    "FramePredictionPipeline",
    "VideoPipelineOutput",
    "export_to_video",
    "postprocess_video",
    "repeat_to_num_frames",
]
