"""EVATok router (stage 3, paper Sec. 3.3 / App. G; ``research/evatok_impl.md`` Sec. 4).

A ViT-S-size video classifier that scores every candidate assignment ``a = (k_1..k_T)`` of a clip and a
selection API that turns the scores into per-block token counts under a preference, a per-clip cap, a
quality target or an average budget over a set of clips.

Layouts: videos ``(B, C, T, H, W)`` float in ``[0, 1]``; scores ``(B, A)`` with ``A = m^T`` in the class order of
:mod:`hf_vidtok.evatok.assignments` (block 1 the most significant digit, levels ascending); selections
``(B, num_blocks)`` long token counts.
"""

from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from ...evatok.assignments import candidate_assignments, prefix_class_range
from ...evatok.reward import HIGHER_IS_BETTER, best_assignment
from ..hub_mixin import HubMixin
from ...modules.attention import TransformerBlock
from ...modules.initialization import init_vit_module
from ...modules.input_checks import check_pixel_values
from ...modules.patch_embed import PatchEmbed3D
from ...modules.position_embeddings import sincos_3d, sincos_table
from .configuration_evatok_router import EvatokRouterConfig

__all__ = [
    "EvatokRouterOutput",
    "EvatokRouterPreTrainedModel",
    "EvatokRouter",
    "SELECTION_ARGUMENTS",
    "attach_router",
    "build_tokenizer_router",
    "resolve_assignment",
]

#: Keyword arguments of :meth:`EvatokRouter.select` that ``EvatokTokenizer.encode`` passes through.
SELECTION_ARGUMENTS = ("w_q", "max_tokens", "quality_target", "target_mean_tokens", "allowed_prefix", "length_multiplier")

# Bisection steps of the average-budget multiplier (float64: the bracket shrinks to ~1e-19 of its width).
_BISECTION_STEPS = 64


@dataclass
class EvatokRouterOutput(ModelOutput):
    """Output of :meth:`EvatokRouter.forward`.

    Args:
        loss (scalar, optional): total training loss (when labels / quality targets are given).
        logits (`(B, A)`): classifier head's logits over the candidate assignments (None for the quality head).
        quality (`(B, A)`): quality head's predicted signed z-scored quality ``Q^`` of every assignment, higher is
            better, as :func:`hf_vidtok.evatok.reward.quality_scores` (None for the classifier head).
        classification_loss, quality_loss, listwise_loss (scalars, optional): the loss terms.
        cls_hidden_state (`(B, D)`): final-norm [CLS] state.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    quality: torch.FloatTensor | None = None
    classification_loss: torch.FloatTensor | None = None
    quality_loss: torch.FloatTensor | None = None
    listwise_loss: torch.FloatTensor | None = None
    cls_hidden_state: torch.FloatTensor | None = None

    @property
    def scores(self) -> torch.FloatTensor:
        """The head's output, whichever head it is: ``(B, A)``."""
        return self.logits if self.logits is not None else self.quality


class EvatokRouterPreTrainedModel(HubMixin, PreTrainedModel):
    config_class = EvatokRouterConfig
    config: EvatokRouterConfig
    base_model_prefix = "router"
    main_input_name = "pixel_values"
    _no_split_modules = ["TransformerBlock"]
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module):
        """ViT init: truncated-normal Linear / patch weights (std ``initializer_range``), zero biases, unit
        LayerNorms; the head starts at zero (uniform logits, ``Q^ = 0`` = the table mean)."""
        std = self.config.initializer_range
        init_vit_module(module, std)
        if isinstance(module, EvatokRouter):
            init.trunc_normal_(module.cls_token, std=std)
            init.zeros_(module.head.weight)
            init.zeros_(module.head.bias)
            module._init_buffers()


class EvatokRouter(EvatokRouterPreTrainedModel):
    """Scores the ``A`` candidate assignments of a clip.

    * :meth:`forward` ``pixel_values (B, C, T, H, W)`` in ``[0, 1]`` -> :class:`EvatokRouterOutput` with ``logits``
      (classifier head) or ``quality`` (quality head), plus losses given ``labels`` / ``quality_targets``.
    * :meth:`select` -> ``(B, num_blocks)`` token counts under a preference / cap / quality target / average
      budget / forced prefix; :meth:`select_from_scores` does the same from precomputed scores.
    * :meth:`calibrate_length_multiplier` finds the one multiplier that meets an average budget on a set of clips
      (reuse it with ``select(..., length_multiplier=...)`` on later batches).
    """

    def __init__(self, config: EvatokRouterConfig):
        super().__init__(config)
        c = config
        self.patch_embed = PatchEmbed3D(c.in_channels, c.hidden_size, c.patch_size, c.temporal_patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.hidden_size))
        self.register_buffer("pos_embed", self._pos_table(), persistent=False)
        self.blocks = nn.ModuleList(
            [
                TransformerBlock(c.hidden_size, c.num_attention_heads, c.mlp_ratio, c.qkv_bias, c.layer_norm_eps)
                for _ in range(c.num_hidden_layers)
            ]
        )
        self.norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.head = nn.Linear(c.hidden_size, c.num_assignments)
        cand = candidate_assignments(c.token_levels, c.num_blocks)
        self.register_buffer("candidate_assignments", cand, persistent=False)
        self.register_buffer("assignment_lengths", cand.sum(-1), persistent=False)
        distinct, column = self._length_tables()
        self.register_buffer("distinct_lengths", distinct, persistent=False)  # (K,) ascending
        self.register_buffer("length_columns", column, persistent=False)  # (A,) class -> index into distinct_lengths
        config.length_stats()  # memoised on the host now, so that a compiled selection reads constants
        self.post_init()

    # --------------------------------------------------------------------------------------- buffers

    def _pos_table(self) -> torch.Tensor:
        t, h, w = self.config.grid
        return sincos_table(sincos_3d(self.config.hidden_size, h, t, w))

    def _length_tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(distinct lengths (K,) ascending, column of each class (A,))``, built on the host in plain Python (the
        model may be created on the meta device). ``itertools.product`` order is the class order."""
        c = self.config
        lengths = [sum(a) for a in itertools.product(c.token_levels, repeat=c.num_blocks)]
        distinct = sorted(set(lengths))
        where = {length: i for i, length in enumerate(distinct)}
        return torch.tensor(distinct), torch.tensor([where[length] for length in lengths])

    def _init_buffers(self):
        """Refill the non-persistent buffers (needed after a meta-device ``from_pretrained``)."""
        c = self.config
        cand = candidate_assignments(c.token_levels, c.num_blocks)
        distinct, column = self._length_tables()
        for name, value in (("pos_embed", self._pos_table()), ("candidate_assignments", cand),
                            ("assignment_lengths", cand.sum(-1)), ("distinct_lengths", distinct),
                            ("length_columns", column)):
            buf = self._buffers[name]
            init.copy_(buf, value.to(buf.device, buf.dtype))

    @property
    def head_type(self) -> str:
        return self.config.head_type

    def normalized_lengths(self, dtype=torch.float32) -> torch.Tensor:
        """``L~(a) = (L(a) - length_mean) / length_std`` (Eq. 7): ``(A,)``."""
        mean, std = self.config.length_stats()
        return (self.assignment_lengths.to(dtype) - mean) / std

    # --------------------------------------------------------------------------------------- forward

    def _prepare_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        c = self.config
        size = (c.num_frames, c.image_size, c.image_size)
        check_pixel_values(pixel_values, shape=(c.in_channels, None, None, None))  # other sizes: see below
        if tuple(pixel_values.shape[2:]) != size:
            if not c.resize_input:
                raise ValueError(
                    f"`pixel_values` must have (T, H, W) = {size} (config.resize_input is False), got "
                    f"{tuple(pixel_values.shape[2:])}"
                )
            down = all(s <= p for s, p in zip(size, pixel_values.shape[2:]))
            mode = "area" if down else "trilinear"
            pixel_values = F.interpolate(pixel_values.float(), size=size, mode=mode)
        return pixel_values.to(self.patch_embed.proj.weight.dtype) * 2.0 - 1.0

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        quality_targets: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> EvatokRouterOutput | tuple:
        """Score the candidate assignments.

        Args:
            pixel_values (`(B, C, T, H, W)` float in `[0, 1]`).
            labels (classifier head): `(B,)` long class ids (cross-entropy with ``config.label_smoothing``) or
                `(B, A)` float soft labels (rows summing to 1; cross-entropy to them).
            quality_targets (quality head): `(B, A)` float signed z-scored quality of every assignment (the stage-2
                table through :func:`hf_vidtok.evatok.reward.quality_scores`, higher is better); regression loss
                plus, with ``config.listwise_loss_weight > 0``, the listwise cross-entropy over random preferences.
        """
        c = self.config
        return_dict = True if return_dict is None else return_dict
        x = self.patch_embed(self._prepare_pixels(pixel_values)) + self.pos_embed.to(self.patch_embed.proj.weight.dtype)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        for i, block in enumerate(self.blocks):
            # the last block only needs the [CLS] row
            x = block(x, num_queries=1 if i == len(self.blocks) - 1 else None)
        cls = self.norm(x[:, 0])
        scores = self.head(cls)

        out = EvatokRouterOutput(cls_hidden_state=cls)
        if c.head_type == "classifier":
            out.logits = scores
            if quality_targets is not None:
                raise ValueError("`quality_targets` are for a quality-head router; this router has head_type='classifier'")
            if labels is not None:
                out.classification_loss = self._classification_loss(scores, labels)
                out.loss = out.classification_loss
        else:
            out.quality = scores
            if labels is not None:
                raise ValueError("`labels` are for a classifier router; a quality head is trained with `quality_targets`")
            if quality_targets is not None:
                out.quality_loss, out.listwise_loss = self._quality_losses(scores, quality_targets)
                out.loss = out.quality_loss
                if out.listwise_loss is not None:
                    out.loss = out.loss + c.listwise_loss_weight * out.listwise_loss
        return out if return_dict else out.to_tuple()

    def _classification_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if labels.dim() == 1 and not labels.dtype.is_floating_point:
            return F.cross_entropy(logits.float(), labels.long(), label_smoothing=self.config.label_smoothing)
        if labels.shape != logits.shape or not labels.dtype.is_floating_point:
            raise ValueError(
                f"`labels` must be (B,) long class ids or (B, {logits.shape[-1]}) float soft labels, got "
                f"{labels.dtype} of shape {tuple(labels.shape)}"
            )
        return -(labels.float() * F.log_softmax(logits.float(), dim=-1)).sum(-1).mean()

    def _regression_loss(self, q: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Regression of the predicted on the table's z-scored quality, in two balanced parts.

        The targets vary far more between clips than between the assignments of one clip (on the tiny recipe's
        table: SSIM std 0.23 between clip means, 0.017 within a clip), and only the within-clip part decides
        which assignment is chosen. A plain MSE is the sum ``(q_mean - t_mean)^2 + mean((q - q_mean) - (t -
        t_mean))^2``, where the second part is tiny and its gradient drowns in the first's noise: the head then
        ranks assignments at random. Here the within-clip part is divided by the batch's within-clip target
        variance (no gradient through it), so both parts weigh alike. Predictions stay in the table's z-units
        (clip mean + within-clip deviation), so quality targets and budgets keep their meaning.
        """
        c = self.config
        if c.quality_loss == "mse":
            loss = F.mse_loss
        else:
            def loss(a, b):
                return F.huber_loss(a, b, delta=c.huber_delta)
        q_mean, t_mean = q.mean(-1, keepdim=True), t.mean(-1, keepdim=True)
        q_dev, t_dev = q - q_mean, t - t_mean
        scale = t_dev.detach().pow(2).mean().clamp_min(1e-8).sqrt()
        return loss(q_mean, t_mean) + loss(q_dev / scale, t_dev / scale)

    def _quality_losses(self, quality: torch.Tensor, targets: torch.Tensor):
        c = self.config
        if targets.shape != quality.shape or not targets.dtype.is_floating_point:
            raise ValueError(
                f"`quality_targets` must be (B, {quality.shape[-1]}) float, got {targets.dtype} {tuple(targets.shape)}"
            )
        q, t = quality.float(), targets.float()
        reg = self._regression_loss(q, t)
        if c.listwise_loss_weight == 0:
            return reg, None
        w_q = torch.rand(q.shape[0], 1, device=q.device, dtype=q.dtype)
        w_q = c.listwise_w_q_min + (c.listwise_w_q_max - c.listwise_w_q_min) * w_q
        ln = self.normalized_lengths(q.dtype)
        # ListNet: the table's reward distribution for w_q against the predicted one (KL). Its minimum is the true
        # quality up to a per-clip shift, the regression's own optimum; a hard argmax target (cross-entropy to the
        # table's label) instead pushes the label's predicted quality up without bound, and the shortest
        # assignment, the label of most clips at small w_q, ended up predicted as the best one at every w_q
        target = F.softmax((w_q * t - (2.0 - w_q) * ln) / c.listwise_temperature, dim=-1)
        log_pred = F.log_softmax((w_q * q - (2.0 - w_q) * ln) / c.listwise_temperature, dim=-1)
        return reg, (target * (target.clamp_min(1e-30).log() - log_pred)).sum(-1).mean()

    # -------------------------------------------------------------------------------------- selection

    @torch.no_grad()
    def select(
        self,
        pixel_values: torch.Tensor,
        w_q: float | None = None,
        max_tokens: int | Sequence[int] | torch.Tensor | None = None,
        quality_target: float | None = None,
        target_mean_tokens: float | None = None,
        allowed_prefix: Sequence[int] | None = None,
        length_multiplier: float | None = None,
    ) -> torch.LongTensor:
        """Per-clip token counts ``(B, num_blocks)`` chosen by the router (one forward, then
        :meth:`select_from_scores`; see it for the arguments)."""
        scores = self(pixel_values).scores
        return self.select_from_scores(
            scores, w_q=w_q, max_tokens=max_tokens, quality_target=quality_target,
            target_mean_tokens=target_mean_tokens, allowed_prefix=allowed_prefix,
            length_multiplier=length_multiplier,
        )

    @torch.no_grad()
    def select_from_scores(
        self,
        scores: torch.Tensor | EvatokRouterOutput,
        w_q: float | None = None,
        max_tokens: int | Sequence[int] | torch.Tensor | None = None,
        quality_target: float | None = None,
        target_mean_tokens: float | None = None,
        allowed_prefix: Sequence[int] | None = None,
        length_multiplier: float | None = None,
    ) -> torch.LongTensor:
        """Token counts ``(B, num_blocks)`` from precomputed head scores ``(B, A)`` (or a router output).

        Let ``u(a)`` be the utility of an assignment: the predicted quality ``Q^(a)`` (quality head; higher is
        better) or ``log softmax(logits)(a)`` (classifier), and ``L~(a)`` the normalised length (Eq. 7). Ties in
        any objective go to the shorter assignment, then the lower class id. At most one objective among ``w_q``,
        ``quality_target``, ``target_mean_tokens`` and ``length_multiplier`` may be given; ``max_tokens`` and
        ``allowed_prefix`` are hard constraints that combine with any of them.

        Args:
            w_q (`float` in [0, 2]): preference, ``argmax w_q * Q^ - (2 - w_q) * L~`` (Eq. 3 with ``w_l = 2 - w_q``).
                Quality head: any value. Classifier: only the preference its labels were made with
                (``config.label_w_q``); other values raise. Without any objective: ``config.default_w_q``
                (quality head) or the argmax of the logits (classifier).
            max_tokens (`int` or `(B,)` ints): per-clip cap on ``L(a)``, never exceeded. With no objective
                (quality head): the best predicted quality within the cap, ``argmax_{L(a) <= B} Q^``.
            quality_target (`float`, quality head only): target value of the quality metric in its own units
                (``config.quality_metric``, e.g. LPIPS 0.1): the shortest assignment whose predicted metric meets
                it (``<=`` for LPIPS / MSE, ``>=`` for SSIM / PSNR); clips where none does get the best predicted
                quality.
            target_mean_tokens (`float`): average budget over the clips of ``scores``: ``argmax u - lambda * L~``
                with one ``lambda >= 0`` for all clips, found by bisection (:meth:`calibrate_length_multiplier`).
                Guarantee: the mean ``L(a)`` of the returned selection is ``<= target_mean_tokens`` (the
                multiplier used is the feasible end of the bisection bracket, whose mean is computed, not assumed).
                The mean falls short of the target only by the jump at the critical multiplier, generically one
                clip changing its assignment (at most ``(L_max - L_min) / B`` tokens).
            allowed_prefix (sequence of token counts): force the first ``len(prefix)`` blocks (e.g. the K600
                frame-prediction condition (512, 128)): a mask over a contiguous class range.
            length_multiplier (`float >= 0`): a multiplier calibrated earlier (e.g. on a whole data set with
                :meth:`calibrate_length_multiplier`), applied as ``argmax u - lambda * L~``.
        """
        util, allowed, w_q, mode = self._selection_setup(
            scores, w_q, max_tokens, quality_target, target_mean_tokens, allowed_prefix, length_multiplier
        )
        if mode == "budget":
            cls = self._argmax_penalised(util, allowed, self._bisect_multiplier(util, allowed, target_mean_tokens))
        elif mode == "multiplier":
            lam = torch.tensor(float(length_multiplier), dtype=util.dtype, device=util.device)
            cls = self._argmax_penalised(util, allowed, lam)
        elif mode == "quality_target":
            cls = self._shortest_meeting_target(util, allowed, quality_target)
        else:  # a preference (given or the default), or the plain utility under the constraints
            obj = util if w_q is None else w_q * util - (2.0 - w_q) * self.normalized_lengths(util.dtype)
            cls = self._argmax(obj, allowed)
        return self.candidate_assignments[cls]

    @torch.no_grad()
    def calibrate_length_multiplier(
        self,
        scores: torch.Tensor | EvatokRouterOutput,
        target_mean_tokens: float,
        max_tokens: int | Sequence[int] | torch.Tensor | None = None,
        allowed_prefix: Sequence[int] | None = None,
    ) -> float:
        """The smallest multiplier ``lambda >= 0`` (to bisection precision) such that ``argmax u - lambda * L~`` over
        the clips of ``scores (N, A)`` has mean ``L(a) <= target_mean_tokens``. For the quality head this is the
        preference ``w_q = 2 / (1 + lambda)``. Reuse it with ``select(..., length_multiplier=lambda)``."""
        util, allowed, _, _ = self._selection_setup(
            scores, None, max_tokens, None, target_mean_tokens, allowed_prefix, None
        )
        return float(self._bisect_multiplier(util, allowed, target_mean_tokens))

    # -- helpers

    def _selection_setup(self, scores, w_q, max_tokens, quality_target, target_mean_tokens, allowed_prefix, multiplier):
        """Validate the arguments; returns ``(utility (B, A) float64, allowed (B, A) bool, w_q, mode)``."""
        c = self.config
        if isinstance(scores, EvatokRouterOutput):
            scores = scores.scores
        if not isinstance(scores, torch.Tensor) or scores.dim() != 2 or scores.shape[-1] != c.num_assignments:
            shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
            raise ValueError(f"`scores` must be a (B, {c.num_assignments}) tensor of head outputs, got {shape}")
        given = {k: v for k, v in (("w_q", w_q), ("quality_target", quality_target),
                                   ("target_mean_tokens", target_mean_tokens), ("length_multiplier", multiplier))
                 if v is not None}
        if len(given) > 1:
            raise ValueError(
                f"conflicting selection objectives {sorted(given)}: give at most one of `w_q`, `quality_target`, "
                "`target_mean_tokens` and `length_multiplier` (`max_tokens` / `allowed_prefix` combine with any)"
            )
        for name, value in given.items():
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise TypeError(f"`{name}` must be a finite real number, got {value!r}")
        if w_q is not None and not 0.0 <= w_q <= 2.0:
            raise ValueError(f"`w_q` must be in [0, 2] (w_l = 2 - w_q), got {w_q}")
        if multiplier is not None and multiplier < 0:
            raise ValueError(f"`length_multiplier` must be >= 0, got {multiplier}")
        if target_mean_tokens is not None and target_mean_tokens <= 0:
            raise ValueError(f"`target_mean_tokens` must be positive, got {target_mean_tokens}")
        # float64 keeps bisection and ties exact enough (MPS has no float64)
        util = scores.float() if scores.device.type == "mps" else scores.double()
        if c.head_type == "classifier":
            if quality_target is not None:
                raise ValueError(
                    "`quality_target` needs predicted qualities: use a router with head_type='quality' "
                    "(a classifier only ranks assignments)"
                )
            if w_q is not None and (c.label_w_q is None or not math.isclose(w_q, c.label_w_q, abs_tol=1e-9)):
                raise ValueError(
                    f"this classifier router was trained for one preference (label_w_q={c.label_w_q}); it cannot "
                    f"serve w_q={w_q}: use a router with head_type='quality' for other preferences, or a budget "
                    "(`max_tokens` / `target_mean_tokens`)"
                )
            util, w_q = F.log_softmax(util, dim=-1), None  # the logits already encode the preference
        else:
            if quality_target is not None and (c.quality_metric is None or c.quality_mean is None or c.quality_std is None):
                raise ValueError(
                    "`quality_target` is in the quality metric's units, but this router's config lacks "
                    "`quality_metric` / `quality_mean` / `quality_std` (train_router.py sets them from the score table)"
                )
            if not given and max_tokens is None:
                w_q = c.default_w_q
        allowed, min_len = self._allowed_mask(scores.shape[0], max_tokens, allowed_prefix, scores.device)
        if target_mean_tokens is not None:
            # the smallest mean any selection reaches: every clip at its shortest allowed assignment
            lengths = torch.where(allowed, self.assignment_lengths, torch.iinfo(torch.long).max)
            reachable = lengths.amin(-1).double().mean()
            if torch.compiler.is_compiling():  # no host read in a traced graph: checked where it runs
                torch._assert_async(
                    reachable <= target_mean_tokens + 1e-9,
                    f"`target_mean_tokens`={target_mean_tokens} is below the minimum possible mean length",
                )
            elif target_mean_tokens < float(reachable) - 1e-9:
                raise ValueError(
                    f"`target_mean_tokens`={target_mean_tokens} is below the minimum possible mean length "
                    f"{float(reachable):g} (the shortest allowed assignment of every clip; per clip at least {min_len})"
                )
        mode = ("budget" if target_mean_tokens is not None else "multiplier" if multiplier is not None
                else "quality_target" if quality_target is not None else "preference")
        return util, allowed, w_q, mode

    def _allowed_mask(self, batch, max_tokens, allowed_prefix, device):
        """``(B, A)`` bool mask of allowed assignments and the shortest possible length (validated)."""
        c = self.config
        levels, t = c.token_levels, c.num_blocks
        allowed = torch.ones(batch, c.num_assignments, dtype=torch.bool, device=device)
        min_len = t * levels[0]
        if allowed_prefix is not None:
            if isinstance(allowed_prefix, (str, bytes, torch.Tensor)) or not isinstance(allowed_prefix, Sequence):
                raise TypeError(f"`allowed_prefix` must be a sequence of token counts, got {type(allowed_prefix).__name__}")
            if len(allowed_prefix) == 0:
                raise ValueError("`allowed_prefix` must name at least one block's token count")
            try:
                rng = prefix_class_range(allowed_prefix, levels, t)
            except (ValueError, TypeError) as err:
                raise ValueError(f"bad `allowed_prefix` {tuple(allowed_prefix)}: {err}") from None
            ids = torch.arange(c.num_assignments, device=device)
            allowed &= ((ids >= rng.start) & (ids < rng.stop)).unsqueeze(0)
            min_len = sum(int(k) for k in allowed_prefix) + (t - len(allowed_prefix)) * levels[0]
        if max_tokens is not None:
            cap = _check_cap(max_tokens, batch, min_len, allowed_prefix)
            allowed &= self.assignment_lengths.unsqueeze(0) <= cap.to(device).unsqueeze(-1)
        return allowed, min_len

    def _argmax(self, values, allowed):
        return best_assignment(values.masked_fill(~allowed, -math.inf), self.assignment_lengths)

    def _argmax_penalised(self, util, allowed, lam):
        return self._argmax(util - lam.to(util) * self.normalized_lengths(util.dtype), allowed)

    def _bisect_multiplier(self, util, allowed, target: float) -> torch.Tensor:
        """One multiplier for all clips, as a 0-d tensor on the device (no host sync inside the loop).

        The search runs on a reduced problem: per clip and distinct length, the best allowed utility
        ``(B, K)`` with the K lengths ascending, whose plain argmax (first maximum = shortest) picks exactly the
        length that the full ``(B, A)`` selection picks (subtracting ``lambda * L~`` is monotone in the utility),
        at ``K / A`` of the cost (61 / 625 for the paper's set). ``hi`` starts where every clip takes its shortest
        allowed assignment (the length gap outweighs any utility gap), which meets every target the validation
        accepts; the loop keeps ``mean L(hi) <= target`` invariant.
        """
        distinct, column = self.distinct_lengths, self.length_columns
        masked = util.masked_fill(~allowed, -math.inf)
        best = torch.full((util.shape[0], distinct.numel()), -math.inf, dtype=util.dtype, device=util.device)
        best = best.scatter_reduce(1, column.unsqueeze(0).expand_as(masked), masked, reduce="amax")
        mean, std = self.config.length_stats()
        ln = (distinct.to(util.dtype) - mean) / std
        distinct = distinct.to(util.dtype)

        def mean_length(lam):
            return distinct[(best - lam * ln).argmax(dim=-1)].mean()

        spread = masked.amax() - util.masked_fill(~allowed, math.inf).amin()
        lo = torch.zeros((), dtype=util.dtype, device=util.device)
        hi = 2.0 * spread.clamp_min(0) / self._length_gap() + 1.0
        target_t = torch.tensor(float(target), dtype=util.dtype, device=util.device)
        ok0 = mean_length(lo) <= target_t
        for _ in range(_BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            ok = mean_length(mid) <= target_t
            hi, lo = torch.where(ok, mid, hi), torch.where(ok, lo, mid)
        return torch.where(ok0, lo.new_zeros(()), hi)

    def _length_gap(self) -> float:
        """Smallest positive difference of two candidate lengths in ``L~`` units (host-side, from the config)."""
        c = self.config
        lengths = sorted({sum(a) for a in itertools.product(c.token_levels, repeat=c.num_blocks)})
        gaps = [b - a for a, b in zip(lengths, lengths[1:])]
        return (min(gaps) if gaps else 1) / c.length_stats()[1]

    def _shortest_meeting_target(self, util, allowed, quality_target: float):
        c = self.config
        sign = 1.0 if HIGHER_IS_BETTER[c.quality_metric] else -1.0
        tau = sign * (float(quality_target) - c.quality_mean) / c.quality_std  # the target as a signed z-score
        feasible = allowed & (util >= tau)
        lengths = self.assignment_lengths
        shortest = torch.where(feasible, lengths, torch.iinfo(torch.long).max).amin(-1, keepdim=True)
        best_short = self._argmax(util, feasible & (lengths == shortest))
        return torch.where(feasible.any(-1), best_short, self._argmax(util, allowed))


def _check_cap(max_tokens, batch: int, min_len: int, allowed_prefix) -> torch.LongTensor:
    """Validate a per-clip token cap on the host: ``(B,)`` long."""
    if isinstance(max_tokens, bool):
        raise TypeError("`max_tokens` must be an int or a (B,) sequence / tensor of ints, got a bool")
    if isinstance(max_tokens, torch.Tensor):
        if max_tokens.dtype.is_floating_point or max_tokens.dtype == torch.bool or max_tokens.is_complex():
            raise TypeError(f"`max_tokens` must hold integers, got {max_tokens.dtype}")
        cap = max_tokens.detach().long().cpu().reshape(-1)
    elif isinstance(max_tokens, numbers.Integral):
        cap = torch.tensor([int(max_tokens)])
    elif isinstance(max_tokens, Sequence) and not isinstance(max_tokens, (str, bytes)):
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in max_tokens):
            raise TypeError(f"`max_tokens` must be an int or a sequence of ints, got {list(max_tokens)!r}")
        cap = torch.tensor([int(v) for v in max_tokens], dtype=torch.long)
    else:
        raise TypeError(f"`max_tokens` must be an int or a (B,) sequence / tensor of ints, got {type(max_tokens).__name__}")
    if cap.numel() not in (1, batch):
        raise ValueError(f"`max_tokens` must be one int or one per clip ({batch}), got {cap.numel()} values")
    if bool((cap < 0).any()):
        raise ValueError(f"`max_tokens` must be non-negative, got {cap.tolist()}")
    if bool((cap < min_len).any()):
        where = "" if allowed_prefix is None else f" with allowed_prefix={tuple(allowed_prefix)}"
        raise ValueError(f"`max_tokens`={int(cap.min())} is below the minimum possible length {min_len}{where}")
    return cap.expand(batch) if cap.numel() == 1 else cap


# ------------------------------------------------------------------------------ the tokenizer's own router


def _check_router_fits(tokenizer_config, router_config) -> None:
    levels, blocks = list(tokenizer_config.token_levels), int(tokenizer_config.num_blocks)
    if list(router_config.token_levels) != levels or router_config.num_blocks != blocks:
        raise ValueError(
            f"the router scores assignments of levels {list(router_config.token_levels)} x {router_config.num_blocks} "
            f"blocks, the tokenizer uses {levels} x {blocks} blocks"
        )


def build_tokenizer_router(tokenizer_config) -> EvatokRouter | None:
    """The router an ``EvatokTokenizerConfig`` carries in ``router_config`` (a nested ``EvatokRouterConfig`` dict,
    saved in the tokenizer's ``config.json``; its weights live under ``router.`` in the tokenizer's safetensors),
    or None. Called by ``EvatokTokenizer.__init__``."""
    router_config = getattr(tokenizer_config, "router_config", None)
    if router_config is None:
        return None
    if not isinstance(router_config, dict):
        raise TypeError(f"`router_config` must be a dict of EvatokRouterConfig fields, got {type(router_config).__name__}")
    config = EvatokRouterConfig.from_dict(router_config)
    _check_router_fits(tokenizer_config, config)
    return EvatokRouter(config).requires_grad_(False)  # frozen: stage 4 trains the tokenizer around it


def attach_router(tokenizer, router: EvatokRouter):
    """Make ``router`` the tokenizer's own (stage 4): ``tokenizer.router = router`` and its config nested in
    ``tokenizer.config.router_config``, so ``save_pretrained`` / ``from_pretrained`` keep it and
    ``tokenizer.encode(video)`` picks assignments itself. The router is frozen (``requires_grad_(False)``).
    Returns the tokenizer."""
    if not isinstance(router, EvatokRouter):
        raise TypeError(f"`router` must be an EvatokRouter, got {type(router).__name__}")
    _check_router_fits(tokenizer.config, router.config)
    tokenizer.config.router_config = router.config.to_dict()
    tokenizer.router = router.to(tokenizer.device).requires_grad_(False)
    return tokenizer


def resolve_assignment(tokenizer, pixel_values: torch.Tensor, assignment=None, **selection):
    """The assignment ``EvatokTokenizer.encode`` uses: an explicit ``assignment`` wins; otherwise the tokenizer's
    router chooses (``router.select(pixel_values, **selection)``, counts returned on the CPU so the tokenizer knows
    the lengths on the host); without a router None (the tokenizer's ``default_assignment``).

    ``selection``: the arguments of :meth:`EvatokRouter.select` (``SELECTION_ARGUMENTS``; None values are ignored).
    Giving them together with an explicit ``assignment``, or to a tokenizer without a router, raises ValueError.
    """
    unknown = sorted(set(selection) - set(SELECTION_ARGUMENTS))
    if unknown:
        raise TypeError(f"unexpected selection arguments {unknown}; expected some of {SELECTION_ARGUMENTS}")
    selection = {k: v for k, v in selection.items() if v is not None}
    if assignment is not None:
        if selection:
            raise ValueError(
                f"give either `assignment` or router selection arguments {sorted(selection)}, not both "
                "(an explicit assignment is used as is)"
            )
        return assignment
    router = getattr(tokenizer, "router", None)
    if router is None:
        if selection:
            raise ValueError(
                f"selection arguments {sorted(selection)} need a tokenizer with a router: train it with "
                "`train_tokenizer.py --router` or call `hf_vidtok.models.evatok.modeling_evatok_router.attach_router`"
            )
        return None
    return router.select(pixel_values, **selection).cpu()
