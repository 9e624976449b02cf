"""Shared building blocks (torch + einops only)."""

from .attention import Attention, Mlp, QueryTransformer, TransformerBlock
from .input_checks import check_pixel_values
from .kv_cache import StaticKVCache
from .llama_block import CausalSelfAttention, DropPath, LlamaBlock, SwiGLU, swiglu_hidden_size
from .masks import PackedBlockLayout, block_causal_mask, packed_block_layout
from .patch_embed import FramePatchEmbed, PatchEmbed3D, build_patch_embed
from .pooling import max_pyramid_queries, multilevel_pool, pyramid_grids
from .qformer import QFormerAttention, QFormerLayer
from .rms_norm import RMSNorm
from .position_embeddings import sincos_1d, sincos_2d, sincos_3d, sincos_table
from .vector_quantizer import VectorQuantizer, VectorQuantizerOutput, sample_categorical

__all__ = [
    "Attention",
    "check_pixel_values",
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
    "StaticKVCache",
    "CausalSelfAttention",
    "DropPath",
    "LlamaBlock",
    "SwiGLU",
    "swiglu_hidden_size",
    "RMSNorm",
    "block_causal_mask",
    "packed_block_layout",
    "PackedBlockLayout",
    "multilevel_pool",
    "pyramid_grids",
    "max_pyramid_queries",
    "QFormerAttention",
    "QFormerLayer",
]
