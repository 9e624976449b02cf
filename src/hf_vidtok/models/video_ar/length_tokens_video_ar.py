"""Length-token layout of variable-length (EVATok) generators and the structure-enforcing sampling mask.

A clip with ``T = num_blocks`` temporal blocks of ``token_counts[t]`` visual tokens each is the sequence
``[LEN(c_0), v_0 .. v_{c_0-1}, LEN(c_1), ...]`` of ``T + sum(c)`` ids (after the condition prefix),
where ``LEN(c)`` is ``config.length_token_ids[token_levels.index(c)]``.

* :func:`build_length_token_sequence` turns ``indices (B, L_max)`` (padded with -1) and
  ``token_counts (B, T)`` into right-padded ``input_ids`` / ``labels`` (-100 on padding) /
  ``attention_mask`` of shape ``(B, S)``, ``S = max_b (T + sum_t c_bt)`` (or ``pad_to``).
* :func:`parse_length_token_sequence` inverts it (also for generated sequences): ``(indices, token_counts)``.
* :class:`LengthTokenLogitsMask` is the ``logits_mask_fn`` of :meth:`VideoARGenerator.generate` that
  keeps every sampled sequence parseable, on device and without host synchronisation.

Pure torch; the levels come from the generator config (no dependency on ``hf_vidtok.evatok``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = [
    "LengthTokenSequence",
    "build_length_token_sequence",
    "parse_length_token_sequence",
    "LengthTokenLogitsMask",
]


class LengthTokenSequence(NamedTuple):
    """Training batch: ``input_ids (B, S)`` long (padding = the filler id), ``labels (B, S)`` (-100 on
    padding), ``attention_mask (B, S)`` long (1 = real token)."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor


def _layout(config):
    if not getattr(config, "is_variable_length", False):
        raise ValueError("the generator config has no `token_levels` / `num_blocks`: it is not a variable-length model")
    return list(config.token_levels), int(config.num_blocks), list(config.length_token_ids), int(config.codebook_size)


def _check_int_tensor(x, name: str, dims: int) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"`{name}` must be a LongTensor with {dims} dims, got {type(x).__name__}")
    if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool or x.dim() != dims:
        raise ValueError(f"`{name}` must be an integer tensor with {dims} dims, got {tuple(x.shape)} {x.dtype}")
    return x.long()


def _level_index(counts: torch.Tensor, levels: list[int], name: str) -> torch.Tensor:
    """Index into ``levels`` of every entry of ``counts``; ValueError when one is not a level."""
    table = torch.tensor(levels, dtype=torch.long, device=counts.device)
    idx = torch.searchsorted(table, counts.contiguous()).clamp_max(len(levels) - 1)
    if counts.numel() and not bool((table[idx] == counts).all()):
        bad = counts[table[idx] != counts].unique().tolist()
        raise ValueError(f"`{name}` must hold counts from token_levels {levels}, got {bad}")
    return idx


def build_length_token_sequence(
    indices: torch.Tensor, token_counts: torch.Tensor, config, pad_to: int | None = None
) -> LengthTokenSequence:
    """Training sequences for a variable-length generator (exact inverse of :func:`parse_length_token_sequence`).

    Args:
        indices: ``(B, L_max)`` visual ids in ``[0, codebook_size)``, row ``b`` valid on its first
            ``token_counts[b].sum()`` entries and -1 after.
        token_counts: ``(B, num_blocks)`` tokens per block, each one of ``config.token_levels``.
        config: a variable-length :class:`VideoARGeneratorConfig`.
        pad_to: optional fixed length ``S`` (>= the longest sequence; at most ``config.max_seq_len``).
    Returns:
        :class:`LengthTokenSequence`; feed ``input_ids`` and ``labels`` to ``VideoARGenerator.forward``.
    """
    levels, num_blocks, length_ids, codebook = _layout(config)
    indices = _check_int_tensor(indices, "indices", 2)
    token_counts = _check_int_tensor(token_counts, "token_counts", 2).to(indices.device)
    batch, l_max = indices.shape
    if token_counts.shape != (batch, num_blocks):
        raise ValueError(f"`token_counts` must be (B, num_blocks) = ({batch}, {num_blocks}), got {tuple(token_counts.shape)}")
    level_idx = _level_index(token_counts, levels, "token_counts")
    totals = token_counts.sum(1)
    if batch and int(totals.max()) > l_max:
        raise ValueError(f"`token_counts` sum to {int(totals.max())} tokens but `indices` has only {l_max} columns")
    cols = torch.arange(l_max, device=indices.device)
    valid = cols < totals[:, None]
    if bool((valid & ((indices < 0) | (indices >= codebook))).any()):
        raise ValueError(f"`indices` must hold visual ids in [0, {codebook}) on the counted positions")
    if bool((~valid & (indices != -1)).any()):
        raise ValueError("`indices` must be padded with -1 after each clip's `token_counts.sum()` tokens")
    lengths = totals + num_blocks
    longest = int(lengths.max()) if batch else num_blocks
    seq_len = longest if pad_to is None else int(pad_to)
    if seq_len < longest:
        raise ValueError(f"`pad_to` ({pad_to}) is shorter than the longest sequence ({longest} tokens)")
    if longest > config.max_seq_len:
        raise ValueError(f"a sequence of {longest} tokens exceeds the generator's max_seq_len {config.max_seq_len}")

    input_ids = torch.full((batch, seq_len), config.filler_token_id, dtype=torch.long, device=indices.device)
    ends = token_counts.cumsum(1)  # (B, T) exclusive end of each block in visual-token numbering
    starts = ends - token_counts
    # visual token j of block t sits after t + 1 length tokens
    block_of = torch.searchsorted(ends.contiguous(), cols.expand(batch, l_max).contiguous(), right=True)
    pos = (cols + block_of + 1).where(valid, torch.zeros_like(cols))
    input_ids.scatter_(1, pos, torch.where(valid, indices, input_ids.gather(1, pos)))
    len_pos = starts + torch.arange(num_blocks, device=indices.device)
    len_table = torch.tensor(length_ids, dtype=torch.long, device=indices.device)
    input_ids.scatter_(1, len_pos, len_table[level_idx])
    attention_mask = (torch.arange(seq_len, device=indices.device) < lengths[:, None]).long()
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    return LengthTokenSequence(input_ids, labels, attention_mask)


def parse_length_token_sequence(sequences: torch.Tensor, config) -> tuple[torch.Tensor, torch.Tensor]:
    """Split length-token sequences ``(B, S)`` (training ``input_ids`` or :meth:`generate` output;
    anything after a row's last block is ignored) into ``indices (B, L_max)`` padded with -1,
    ``L_max = max_b sum_t c_bt``, and ``token_counts (B, num_blocks)``. ValueError if a row does not
    follow the layout."""
    levels, num_blocks, length_ids, codebook = _layout(config)
    seq = _check_int_tensor(sequences, "sequences", 2)
    batch, seq_len = seq.shape
    device = seq.device
    vocab = max(max(length_ids), codebook) + 1
    level_of_id = torch.full((vocab + 1,), -1, dtype=torch.long, device=device)  # last slot: out of range
    level_of_id[torch.tensor(length_ids, device=device)] = torch.tensor(levels, device=device)
    rows = torch.arange(batch, device=device)
    pos = torch.zeros(batch, dtype=torch.long, device=device)
    counts = torch.empty(batch, num_blocks, dtype=torch.long, device=device)
    starts = torch.empty_like(counts)
    for t in range(num_blocks):
        inside = pos < seq_len
        tok = seq[rows, pos.clamp_max(max(seq_len - 1, 0))] if seq_len else torch.full_like(pos, -1)
        tok = torch.where(inside & (tok >= 0) & (tok < vocab), tok, torch.full_like(tok, vocab))
        count = level_of_id[tok]
        if bool((count < 0).any()):
            r = int((count < 0).nonzero()[0, 0])
            where = f"position {int(pos[r])}" if int(pos[r]) < seq_len else "the end of the sequence"
            raise ValueError(f"row {r}: expected the length token of block {t} at {where} (ids {length_ids})")
        counts[:, t], starts[:, t] = count, pos
        pos = pos + 1 + count
    if batch and int(pos.max()) > seq_len:
        r = int((pos > seq_len).nonzero()[0, 0])
        raise ValueError(f"row {r}: the blocks need {int(pos[r])} tokens but the sequence has {seq_len}")
    p = torch.arange(seq_len, device=device)
    visual = ((p[None, None] > starts[..., None]) & (p[None, None] <= (starts + counts)[..., None])).any(1)
    if bool((visual & ((seq < 0) | (seq >= codebook))).any()):
        r = int((visual & ((seq < 0) | (seq >= codebook))).any(1).nonzero()[0, 0])
        raise ValueError(f"row {r}: a block holds a non-visual id (visual ids are [0, {codebook}))")
    totals = counts.sum(1)
    l_max = int(totals.max()) if batch else 0
    indices = torch.full((batch, l_max + 1), -1, dtype=torch.long, device=device)
    dest = torch.where(visual, visual.long().cumsum(1) - 1, torch.full_like(seq, l_max))
    indices.scatter_(1, dest, torch.where(visual, seq, torch.full_like(seq, -1)))
    return indices[:, :l_max], counts


class LengthTokenLogitsMask:
    """Stateful ``logits_mask_fn(step, sequences) -> allowed (B, V) bool`` enforcing the length-token
    layout during :meth:`VideoARGenerator.generate` (on device, no host synchronisation).

    Per row it tracks ``block`` (length tokens emitted), ``remaining`` (visual tokens still due in the
    current block) and ``used`` (visual tokens announced so far), updated from the previous token:

    * a length token is due (``remaining == 0``, ``block < T``): only length ids of the levels allowed
      by ``forced_prefix`` and the budget ``used + level + min_level * (blocks left after it) <=
      max_total_tokens``;
    * inside a block: only visual ids ``[0, codebook_size)``;
    * finished (all ``T`` blocks complete): only the filler id.

    A sample therefore has at most ``num_blocks + max_total_tokens`` tokens. ``forced_prefix``: counts of
    the first ``k`` blocks, a list of ints (all rows) or a LongTensor ``(B, k)``. ``done`` ``(B,)``:
    rows whose structure was complete before the last queried step.
    """

    def __init__(self, config, batch_size: int, *, device=None, max_total_tokens: int | None = None, forced_prefix=None):
        levels, num_blocks, length_ids, codebook = _layout(config)
        self.num_blocks = num_blocks
        self.levels = torch.tensor(levels, dtype=torch.long, device=device)
        self.length_ids = torch.tensor(length_ids, dtype=torch.long, device=device)
        self.filler_id = int(config.filler_token_id)
        self.codebook_size = codebook
        vocab = int(config.output_vocab_size)
        default_cap = int(config.max_seq_len) - num_blocks
        cap = default_cap if max_total_tokens is None else int(max_total_tokens)
        if isinstance(max_total_tokens, bool) or (max_total_tokens is not None and int(max_total_tokens) != max_total_tokens):
            raise ValueError(f"`max_total_tokens` must be an int, got {max_total_tokens!r}")
        if cap > default_cap:
            raise ValueError(
                f"`max_total_tokens` ({cap}) + num_blocks ({num_blocks}) exceeds max_seq_len ({config.max_seq_len})"
            )
        allowed_levels = torch.ones(batch_size, num_blocks, len(levels), dtype=torch.bool, device=device)
        forced_total = torch.zeros(batch_size, dtype=torch.long, device=device)
        num_forced = 0
        if forced_prefix is not None:
            forced = forced_prefix
            if not isinstance(forced, torch.Tensor):
                if isinstance(forced, (str, bytes)) or not hasattr(forced, "__iter__"):
                    raise TypeError(f"`forced_prefix` must be a list of ints or a LongTensor (B, k), got {type(forced).__name__}")
                forced = torch.as_tensor(list(forced), dtype=torch.long).reshape(1, -1).expand(batch_size, -1)
            forced = _check_int_tensor(forced, "forced_prefix", 2).to(device)
            if forced.shape[0] != batch_size or forced.shape[1] > num_blocks:
                raise ValueError(
                    f"`forced_prefix` must be (B, k) with B = {batch_size} and k <= num_blocks = {num_blocks}, got {tuple(forced.shape)}"
                )
            num_forced = forced.shape[1]
            idx = _level_index(forced, levels, "forced_prefix")
            allowed_levels[:, :num_forced] = torch.nn.functional.one_hot(idx, len(levels)).bool()
            forced_total = forced.sum(1)
        needed = forced_total + (num_blocks - num_forced) * levels[0]
        if batch_size and int(needed.max()) > cap:
            raise ValueError(
                f"`max_total_tokens` ({cap}) is below the {int(needed.max())} tokens needed by the forced prefix and "
                f"the smallest level ({levels[0]}) for the other blocks"
            )
        self.max_total_tokens = cap
        self.allowed_levels = allowed_levels
        self.rows = torch.arange(batch_size, device=device)
        self.level_of_id = torch.zeros(vocab, dtype=torch.long, device=device)
        self.level_of_id[self.length_ids] = self.levels
        self.reserve = (num_blocks - 1 - torch.arange(num_blocks + 1, device=device)).clamp_min(0) * levels[0]
        self.block = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.remaining = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.used = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.allowed = torch.zeros(batch_size, vocab, dtype=torch.bool, device=device)
        self.steps_seen = 0

    @property
    def due(self) -> torch.Tensor:
        return (self.remaining == 0) & (self.block < self.num_blocks)

    @property
    def done(self) -> torch.Tensor:
        return (self.remaining == 0) & (self.block >= self.num_blocks)

    def advance(self, token: torch.Tensor) -> None:
        """Consume the sampled ``token (B,)`` of the step the state currently describes."""
        due = self.due
        count = self.level_of_id[token.clamp(0, self.level_of_id.shape[0] - 1)]
        announced = torch.where(due, count, torch.zeros_like(count))
        self.remaining = torch.where(due, count, (self.remaining - 1).clamp_min(0))
        self.block = self.block + due.long()
        self.used = self.used + announced
        self.steps_seen += 1

    def sync(self, sequences: torch.Tensor, steps: int) -> None:
        """Consume ``sequences[:, steps_seen:steps]`` (the tokens sampled since the last call)."""
        while self.steps_seen < steps:
            self.advance(sequences[:, self.steps_seen])

    def __call__(self, step: int, sequences: torch.Tensor) -> torch.Tensor:
        self.sync(sequences, step)
        due, in_block, done = self.due, self.remaining > 0, self.done
        block = self.block.clamp_max(self.num_blocks - 1)
        budget = self.used[:, None] + self.levels[None] + self.reserve[block][:, None] <= self.max_total_tokens
        level_ok = self.allowed_levels[self.rows, block] & budget & due[:, None]
        allowed = self.allowed
        allowed[:, : self.codebook_size] = in_block[:, None]
        allowed[:, self.codebook_size :] = False
        allowed[:, self.length_ids] = level_ok
        allowed[:, self.filler_id] |= done
        return allowed

    def sequence_lengths(self) -> torch.Tensor:
        """``(B,)`` tokens of each finished row (``num_blocks + used``; meaningful once ``done``)."""
        return self.block + self.used
