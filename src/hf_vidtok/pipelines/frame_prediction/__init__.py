from .pipeline_frame_prediction import FramePredictionPipeline

__all__ = ["FramePredictionPipeline"]
