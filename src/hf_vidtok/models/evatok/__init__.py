"""EVATok adaptive-length tokenizer (configuration, model)."""

from transformers import AutoConfig, AutoModel

from .configuration_evatok import EvatokTokenizerConfig
from .configuration_evatok_router import EvatokRouterConfig
from .modeling_evatok import (
    EvatokBlockOutput,
    EvatokEncoderOutput,
    EvatokPrefixState,
    EvatokPreTrainedModel,
    EvatokTokenizer,
    EvatokTokenizerOutput,
)
from .modeling_evatok_router import EvatokRouter, EvatokRouterOutput, EvatokRouterPreTrainedModel

AutoConfig.register(EvatokTokenizerConfig.model_type, EvatokTokenizerConfig, exist_ok=True)
AutoModel.register(EvatokTokenizerConfig, EvatokTokenizer, exist_ok=True)
AutoConfig.register(EvatokRouterConfig.model_type, EvatokRouterConfig, exist_ok=True)
AutoModel.register(EvatokRouterConfig, EvatokRouter, exist_ok=True)

__all__ = [
    "EvatokTokenizerConfig",
    "EvatokTokenizer",
    "EvatokPreTrainedModel",
    "EvatokEncoderOutput",
    "EvatokTokenizerOutput",
    "EvatokBlockOutput",
    "EvatokPrefixState",
    "EvatokRouterConfig",
    "EvatokRouter",
    "EvatokRouterPreTrainedModel",
    "EvatokRouterOutput",
]
