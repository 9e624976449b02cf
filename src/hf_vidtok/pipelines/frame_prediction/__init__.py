from .pipeline_frame_prediction import FramePredictionPipeline, repeat_to_num_frames

__all__ = ["FramePredictionPipeline", "repeat_to_num_frames"]
