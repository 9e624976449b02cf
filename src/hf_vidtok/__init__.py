"""hf_vidtok: LARP / EVATok video tokenizers and AR video generators for the HF ecosystem.

Videos are ``(B, C, T, H, W)`` float tensors in ``[0, 1]`` everywhere; tokens are ``(B, N)`` long;
variable-length (EVATok) tokens are ``(B, L_max)`` padded with -1 and travel with ``token_counts
(B, num_blocks)`` and an ``attention_mask``. Importing the package registers ``larp_tokenizer``,
``evatok_tokenizer``, ``evatok_router`` and ``video_ar`` with ``AutoConfig`` / ``AutoModel``.

Where each concern lives (one concept per file, named after it):

* ``modules/`` shared blocks: ``patch_embed``, ``position_embeddings`` (sin-cos tables), ``attention``
  (SDPA transformer block, optional mask), ``qformer`` (``QFormerLayer``), ``masks``
  (``block_causal_mask``), ``pooling`` (multi-level query pooling), ``vector_quantizer``,
  ``llama_block`` / ``rms_norm`` / ``kv_cache`` for AR models, ``input_checks`` (the one validation of pixel
  inputs).
* ``models/<name>/`` ``configuration_*`` (architecture only), ``modeling_*`` and
  ``convert_*_original_to_hf`` (official loaders; shared helpers in ``models/convert_utils.py``;
  ``models/hub_mixin.py``: ``from_pretrained`` of official exports, strict weights, the hf_vidtok card on save/push):
  ``larp`` (``LarpTokenizer`` + GPTC prior), ``evatok`` (``EvatokTokenizer``, ``EvatokRouter``),
  ``video_ar`` (``VideoARGenerator``; sampling, the fused CPU decode step, length-token sequences).
* ``losses/`` LARP and EVATok objectives, discriminators, GAN losses, LeCam, V-JEPA 2 alignment,
  the VideoMAE semantic discriminator.
* ``metrics/`` PSNR/SSIM (``image_quality``), LPIPS (``lpips_vgg``), I3D + FVD, their weight converters,
  ``evaluate`` wrappers and folder evaluation.
* ``data/`` PyAV reading (``video_reader``: frames that decode, cached probes), ``layouts``
  (folder / ucf101 / csv), the ``datasets`` ``builder``, the resumable ``clip_stream``, ``transforms``
  (resize/crop/flips), ``collate``, ``sample_videos``.
* ``training/`` what the training scripts share: ``arguments`` (flags + YAML, one validation),
  ``accelerator`` (setup, logging), ``optimization`` (schedules), ``checkpointing`` (atomic
  checkpoints with ``save_pretrained`` folders, exact resume, no pickles), ``validation``,
  ``sample_data``, ``token_data`` / ``length_token_data`` (token datasets for AR), ``assignment_sampling``
  (EVATok stage 1 / stage 4 assignments, length-sorted micro-batches), ``threads`` (the CPU thread policy).
* ``evatok/`` the EVATok stages that are not models: ``assignments``, ``scoring`` (prefix tree),
  ``score_table`` (Parquet), ``reward``, ``curves`` (labels, quality-cost curves).
* ``pipelines/`` ``ClassToVideoPipeline``, ``FramePredictionPipeline``, ``export_to_video``.
* ``hub/`` model cards (templates in ``hub/model_cards``), publishing, and the pipelines' Hub methods
  (``pipeline_mixin``).
* ``commands/`` one module per ``hf-vidtok`` sub-command.

The scripts in the repository's ``training/`` folder (``train_tokenizer.py``, ``score_assignments.py``,
``label_assignments.py``, ``train_router.py``, ``extract_tokens.py``, ``train_ar.py``,
``evaluate_adaptive.py``) are thin: parse, build, loop.
"""

__version__ = "0.1.0"

from .models.larp import LarpTokenizer, LarpTokenizerConfig  # noqa: E402
from .models.evatok import EvatokTokenizer, EvatokTokenizerConfig  # noqa: E402
from .models.evatok import EvatokRouter, EvatokRouterConfig  # noqa: E402
from .models.video_ar import VideoARGenerator, VideoARGeneratorConfig  # noqa: E402

__all__ = ["LarpTokenizer", "LarpTokenizerConfig", "EvatokTokenizer", "EvatokTokenizerConfig", "VideoARGenerator", "VideoARGeneratorConfig", "__version__"]
__all__ += ["EvatokRouter", "EvatokRouterConfig"]
