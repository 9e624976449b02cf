"""hf_vidtok: LARP / EVATok video tokenizers and AR video generators for the HF ecosystem.

Videos are ``(B, C, T, H, W)`` float tensors in ``[0, 1]`` everywhere.
"""

__version__ = "0.1.0"

from .models.larp import LarpTokenizer, LarpTokenizerConfig  # noqa: E402

__all__ = ["LarpTokenizer", "LarpTokenizerConfig", "__version__"]
