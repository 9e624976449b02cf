"""Diffusers-style pipelines (the pipeline classes need the `pipelines` extra:
``pip install hf_vidtok[pipelines]``). ``export_to_video`` and ``postprocess_video`` need only PyAV / numpy,
so the pipeline classes are imported lazily."""

from ..data.transforms import repeat_to_num_frames
from .video_export import export_to_video
from .video_processing import postprocess_video

_LAZY = {
    "ClassToVideoPipeline": ".class_to_video",
    "FramePredictionPipeline": ".frame_prediction",
    "VideoPipelineOutput": ".pipeline_output",
}

__all__ = [
    "ClassToVideoPipeline",
    "FramePredictionPipeline",
    "VideoPipelineOutput",
    "export_to_video",
    "postprocess_video",
    "repeat_to_num_frames",
]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        try:
            module = importlib.import_module(_LAZY[name], __name__)
        except ImportError as e:
            if "diffusers" in str(e):
                raise ImportError("hf_vidtok pipelines need diffusers: pip install 'hf_vidtok[pipelines]'") from e
            raise
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
