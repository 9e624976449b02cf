"""LARP tokenizer (configuration, model, GPTC prior, converter)."""

from transformers import AutoConfig, AutoModel

from .configuration_larp import GPTC_PRESETS, LarpTokenizerConfig
from .modeling_larp import (
    LarpEncoderOutput,
    LarpPreTrainedModel,
    LarpPriorLossSettings,
    LarpTokenizer,
    LarpTokenizerOutput,
)
from .modeling_larp_prior import GptcPrior

AutoConfig.register(LarpTokenizerConfig.model_type, LarpTokenizerConfig, exist_ok=True)
AutoModel.register(LarpTokenizerConfig, LarpTokenizer, exist_ok=True)

__all__ = [
    "GPTC_PRESETS",
    "LarpTokenizerConfig",
    "LarpTokenizer",
    "LarpPreTrainedModel",
    "LarpPriorLossSettings",
    "LarpEncoderOutput",
    "LarpTokenizerOutput",
    "GptcPrior",
]
