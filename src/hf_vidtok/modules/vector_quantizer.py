"""Vector quantiser with an l2-normalised codebook and stochastic (softmax-sampled) selection.

Works on any ``(B, N, D)`` input with an optional ``(B, N)`` mask, runs in float32 whatever the
autocast state (as the official LARP ``SimpleVectorQuantizer``), and never syncs with the host.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["VectorQuantizer", "VectorQuantizerOutput", "sample_categorical"]


def sample_categorical(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One draw per row of ``probs (..., K)`` (rows need not be normalised) by inverse-CDF sampling.

    Same distribution as ``torch.multinomial(probs, 1)`` but one uniform number per row instead of
    K exponentials, and no input validation pass (no host sync): several times faster for large
    codebooks. Returns ``(...)`` long.
    """
    cdf = probs.float().cumsum(dim=-1)
    u = torch.rand(cdf.shape[:-1] + (1,), device=cdf.device, generator=generator) * cdf[..., -1:]
    idx = torch.searchsorted(cdf, u, right=True).squeeze(-1)
    return idx.clamp_(max=probs.shape[-1] - 1)


@dataclass
class VectorQuantizerOutput:
    """``quantized`` (B, N, D): straight-through codes ``z + sg(q - z)``; ``indices`` (B, N) long;
    ``z`` (B, N, D): the (normalised) input; ``loss = commitment_weight * commitment_loss +
    codebook_weight * codebook_loss (+ entropy_weight * entropy_loss)``; ``logits``
    (B, N, K): similarities used for the selection (cosine when l2-normalised); None when the
    selection is the argmax and ``return_logits=False``."""

    quantized: torch.Tensor
    indices: torch.Tensor
    z: torch.Tensor
    loss: torch.Tensor
    commitment_loss: torch.Tensor
    codebook_loss: torch.Tensor
    entropy_loss: torch.Tensor
    logits: torch.Tensor | None


def _masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return x.mean()
    m = mask.to(x.dtype)
    while m.dim() < x.dim():
        m = m.unsqueeze(-1)
    denom = (m.expand_as(x).sum()).clamp_min(1.0)
    return (x * m).sum() / denom


class VectorQuantizer(nn.Module):
    """Codebook ``embedding`` ``(K, D)`` (raw; l2-normalised on use when ``l2_normalized``).

    Selection: in training, or in eval with ``eval_deterministic=False``, one draw from
    ``softmax(s / stochastic_temperature)`` where ``s`` are the cosine similarities (when
    ``stochastic``); otherwise ``argmax s`` (the nearest code). ``generator`` makes the draw
    reproducible.
    """

    def __init__(
        self,
        codebook_size: int,
        dim: int,
        commitment_loss_weight: float = 0.25,
        codebook_loss_weight: float = 1.0,
        entropy_loss_weight: float = 0.0,
        entropy_loss_temperature: float = 0.01,
        l2_normalized: bool = True,
        stochastic: bool = True,
        stochastic_temperature: float = 0.03,
        eval_deterministic: bool = True,
    ):
        super().__init__()
        if codebook_size <= 0 or dim <= 0:
            raise ValueError(f"codebook_size and dim must be positive, got {codebook_size}, {dim}")
        if stochastic and stochastic_temperature <= 0:
            raise ValueError(f"`stochastic_temperature` must be > 0, got {stochastic_temperature}")
        self.codebook_size = codebook_size
        self.dim = dim
        self.commitment_loss_weight = commitment_loss_weight
        self.codebook_loss_weight = codebook_loss_weight
        self.entropy_loss_weight = entropy_loss_weight
        self.entropy_loss_temperature = entropy_loss_temperature
        self.l2_normalized = l2_normalized
        self.stochastic = stochastic
        self.stochastic_temperature = stochastic_temperature
        self.eval_deterministic = eval_deterministic
        self.embedding = nn.Embedding(codebook_size, dim)

    def get_codebook(self) -> torch.Tensor:
        """The codebook as used for selection: ``(K, D)`` float32, l2-normalised if configured."""
        emb = self.embedding.weight.float()
        return F.normalize(emb, dim=-1) if self.l2_normalized else emb

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes for ``indices`` (any shape) -> ``(*indices.shape, D)`` float32: the raw rows are
        looked up, then normalised (the official ``get_codebook_entry`` order)."""
        codes = F.embedding(indices, self.embedding.weight.float())
        return F.normalize(codes, dim=-1) if self.l2_normalized else codes

    def _similarities(self, z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
        """``(..., D)`` x ``(K, D)`` -> ``(..., K)``: cosine similarities, or minus squared distances."""
        if self.l2_normalized:
            return z @ codebook.t()
        return -(z.pow(2).sum(-1, keepdim=True) - 2 * z @ codebook.t() + codebook.pow(2).sum(-1))

    def _nearest(self, z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
        """``argmax`` of the similarities, a few rows at a time (``(B, N, D)`` -> ``(B, N)`` long).

        Why not one ``argmax`` over the full ``(B*N, K)`` matrix: for a large codebook that matrix is tens of MB
        (8192 codes x 1024 rows: 32 MB), which the allocator maps fresh on every call and which only exists to be
        reduced; row blocks of about 2M similarities stay in cache and halve the quantiser's time on a CPU. Every
        similarity is the same dot product either way (one row of ``z`` against one code)."""
        flat = z.reshape(-1, z.shape[-1])
        rows = max(1, (1 << 21) // codebook.shape[0])
        if flat.shape[0] <= rows:
            return self._similarities(flat, codebook).argmax(dim=-1).view(z.shape[:-1])
        parts = [self._similarities(flat[i : i + rows], codebook).argmax(dim=-1) for i in range(0, flat.shape[0], rows)]
        return torch.cat(parts).view(z.shape[:-1])

    def forward(
        self,
        z: torch.Tensor,
        mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        return_logits: bool = True,
    ):
        """Quantise ``z (B, N, D)``; ``mask (B, N)`` limits the losses to valid positions. ``return_logits=False``
        (the deterministic selection only: eval, or ``stochastic=False``) skips the full ``(B, N, K)`` similarity
        matrix when nothing needs it (no entropy loss): the output's ``logits`` is then None."""
        if z.dim() != 3 or z.shape[-1] != self.dim:
            raise ValueError(f"quantizer input must be (B, N, {self.dim}), got {tuple(z.shape)}")
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = z.float()
            if self.l2_normalized:
                z = F.normalize(z, dim=-1)
            codebook = self.get_codebook()
            sample = self.stochastic and (self.training or not self.eval_deterministic)
            need_logits = sample or return_logits or self.entropy_loss_weight > 0
            logits = self._similarities(z, codebook) if need_logits else None
            if sample:
                probs = torch.softmax(logits / self.stochastic_temperature, dim=-1)
                indices = sample_categorical(probs, generator=generator)
            elif logits is not None:  # the similarities exist already: no second pass over the codebook
                indices = logits.argmax(dim=-1)
            else:
                indices = self._nearest(z, codebook)
            q = F.embedding(indices, codebook)
            commitment_loss = _masked_mean((q.detach() - z).pow(2), mask)
            codebook_loss = _masked_mean((q - z.detach()).pow(2), mask)
            if self.entropy_loss_weight > 0:
                entropy_loss = self._entropy_loss(logits, mask)
            else:
                entropy_loss = commitment_loss.new_zeros(())
            loss = (
                self.commitment_loss_weight * commitment_loss
                + self.codebook_loss_weight * codebook_loss
                + self.entropy_loss_weight * entropy_loss
            )
            quantized = z + (q - z).detach()
        return VectorQuantizerOutput(
            quantized=quantized,
            indices=indices,
            z=z,
            loss=loss,
            commitment_loss=commitment_loss,
            codebook_loss=codebook_loss,
            entropy_loss=entropy_loss,
            logits=logits,
        )

    def _entropy_loss(
        self, logits: torch.Tensor, mask: torch.Tensor | None, temperature: float | None = None
    ) -> torch.Tensor:
        """Per-sample entropy minus codebook (batch-average) entropy of ``softmax(s / tau)`` (``tau``:
        ``temperature``, default ``entropy_loss_temperature``)."""
        tau = self.entropy_loss_temperature if temperature is None else temperature
        probs = torch.softmax(logits / tau, dim=-1)
        log_probs = torch.log_softmax(logits / tau, dim=-1)
        per_sample = -(probs * log_probs).sum(-1)
        if mask is not None:
            m = mask.to(probs.dtype).unsqueeze(-1)
            avg_probs = (probs * m).sum((0, 1)) / m.sum().clamp_min(1.0)
        else:
            avg_probs = probs.reshape(-1, probs.shape[-1]).mean(0)
        codebook_entropy = -(avg_probs * torch.log(avg_probs.clamp_min(1e-10))).sum()
        return _masked_mean(per_sample, mask) - codebook_entropy
