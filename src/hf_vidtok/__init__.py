"""hf_vidtok: LARP / EVATok video tokenizers and AR video generators for the HF ecosystem.

Videos are ``(B, C, T, H, W)`` float tensors in ``[0, 1]`` everywhere. Importing the package
registers ``larp_tokenizer``, ``evatok_tokenizer`` and ``video_ar`` with ``AutoConfig`` / ``AutoModel``.
"""

__version__ = "0.1.0"

from .models.larp import LarpTokenizer, LarpTokenizerConfig  # noqa: E402
from .models.evatok import EvatokTokenizer, EvatokTokenizerConfig  # noqa: E402
from .models.evatok import EvatokRouter, EvatokRouterConfig  # noqa: E402
from .models.video_ar import VideoARGenerator, VideoARGeneratorConfig  # noqa: E402

__all__ = ["LarpTokenizer", "LarpTokenizerConfig", "EvatokTokenizer", "EvatokTokenizerConfig", "VideoARGenerator", "VideoARGeneratorConfig", "__version__"]
__all__ += ["EvatokRouter", "EvatokRouterConfig"]
