"""Rows → chat-formatted token ids with completion-only labels, and the seeded order of micro-batches.

A row becomes the chat (user = prompt, assistant = completion) through the tokenizer's chat template. The
prompt part is the template rendered with ``add_generation_prompt=True``; everything after it (the completion
and the end-of-turn tokens) carries labels. Rows longer than ``max_seq_length`` are truncated (and counted);
a row with no completion token left is dropped (and counted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from liminal_core.errors import InvalidData
from liminal_core.training.losses import IGNORE_INDEX


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]


@dataclass(frozen=True)
class TokenizedData:
    examples: list[Example]
    truncated: int
    dropped: int


def _ids(tokenizer: Any, chat: list[dict[str, str]], *, generation_prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(chat, add_generation_prompt=generation_prompt, tokenize=True)
    if hasattr(out, "keys"):
        out = out["input_ids"]
    return list(out)


def tokenize_rows(rows: list[dict[str, str]], tokenizer: Any, max_seq_length: int) -> TokenizedData:
    examples, truncated, dropped = [], 0, 0
    for number, row in enumerate(rows, start=1):
        user = [{"role": "user", "content": row["prompt"]}]
        prompt_ids = _ids(tokenizer, user, generation_prompt=True)
        full_ids = _ids(
            tokenizer, [*user, {"role": "assistant", "content": row["completion"]}], generation_prompt=False
        )
        if full_ids[: len(prompt_ids)] != prompt_ids:
            raise InvalidData(
                f"row {number}: the chat template does not render the prompt as a prefix of the full chat; "
                "completion-only labels cannot be placed"
            )
        labels = [IGNORE_INDEX] * len(prompt_ids) + full_ids[len(prompt_ids) :]
        if len(full_ids) > max_seq_length:
            truncated += 1
            full_ids, labels = full_ids[:max_seq_length], labels[:max_seq_length]
        if all(label == IGNORE_INDEX for label in labels[1:]):
            dropped += 1
            continue
        examples.append(Example(full_ids, labels))
    return TokenizedData(examples, truncated, dropped)


class BatchPlan:
    """The micro-batch order: epoch e is a permutation drawn from ``seed + e`` (optionally grouped by length),
    so any micro-batch index maps to the same rows on every run, and a resume needs only the index."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int, *, group_by_length: bool) -> None:
        self.lengths = lengths
        self.batch_size = batch_size
        self.seed = seed
        self.group_by_length = group_by_length
        self.per_epoch = math.ceil(len(lengths) / batch_size)
        self._cache: dict[int, list[list[int]]] = {}

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        if epoch not in self._cache:
            rng = np.random.Generator(np.random.PCG64(self.seed + epoch))
            order = [int(i) for i in rng.permutation(len(self.lengths))]
            if self.group_by_length:
                window = self.batch_size * 50
                batches: list[list[int]] = []
                for start in range(0, len(order), window):
                    part = sorted(order[start : start + window], key=lambda i: self.lengths[i])
                    batches.extend(part[k : k + self.batch_size] for k in range(0, len(part), self.batch_size))
                perm = rng.permutation(len(batches))
                batches = [batches[int(i)] for i in perm]
            else:
                batches = [order[k : k + self.batch_size] for k in range(0, len(order), self.batch_size)]
            self._cache = {epoch: batches}
        return self._cache[epoch]

    def micro_batch(self, index: int) -> list[int]:
        """The row indices of micro-batch ``index`` of the endless stream of epochs."""
        epoch, within = divmod(index, self.per_epoch)
        return self.epoch_batches(epoch)[within]


def collate(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded tensors: input_ids, attention_mask, labels (-100 on prompt and padding)."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        mask[row, :n] = 1
        labels[row, :n] = torch.tensor(e.labels)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
