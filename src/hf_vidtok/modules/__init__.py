"""Shared building blocks (torch + einops only)."""

from .attention import Attention, Mlp, QueryTransformer, TransformerBlock
from .patch_embed import FramePatchEmbed, PatchEmbed3D, build_patch_embed
from .position_embeddings import sincos_1d, sincos_2d, sincos_3d, sincos_table
from .vector_quantizer import VectorQuantizer, VectorQuantizerOutput, sample_categorical

__all__ = [
    "Attention",
    "Mlp",
    "TransformerBlock",
    "QueryTransformer",
    "PatchEmbed3D",
    "FramePatchEmbed",
    "build_patch_embed",
    "sincos_1d",
    "sincos_2d",
    "sincos_3d",
    "sincos_table",
    "VectorQuantizer",
    "VectorQuantizerOutput",
    "sample_categorical",
]
