from .pipeline_class_to_video import ClassToVideoPipeline

__all__ = ["ClassToVideoPipeline"]
