"""The log-prob probe: log P(target) as the first assistant token(s), far more sensitive than sampling.

For each question, log P(v | chat) is computed for the variants of the target ("owl", " owl", "Owl", " Owl");
a variant of several tokens is scored autoregressively (the sum of its tokens' log-probs). The question's
value is the logsumexp over variants; the probe is the mean over questions.
"""

from __future__ import annotations

import math
from typing import Any

import torch


def target_variants(target: str) -> list[str]:
    low = target.strip().lower()
    cap = low[:1].upper() + low[1:]
    return list(dict.fromkeys([low, f" {low}", cap, f" {cap}"]))


@torch.no_grad()
def logprob_probe(model: Any, tokenizer: Any, prompt_ids: list[list[int]], target: str) -> list[float]:
    """log P(target) at the first assistant position, one value per prompt (token ids ready for the answer)."""
    variants = [tokenizer.encode(v, add_special_tokens=False) for v in target_variants(target)]
    sequences, owners, spans = [], [], []
    for q, ids in enumerate(prompt_ids):
        for var in variants:
            sequences.append(ids + var)
            owners.append(q)
            spans.append((len(ids), len(var)))
    device = next(model.parameters()).device
    width = max(len(s) for s in sequences)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, s in enumerate(sequences):
        input_ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    was_training = model.training
    model.eval()
    try:
        logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits.float()
    finally:
        model.train(was_training)
    logp = torch.log_softmax(logits, dim=-1).cpu()
    per_question: list[list[float]] = [[] for _ in prompt_ids]
    for i, (start, length) in enumerate(spans):
        total = 0.0
        for k in range(length):
            total += float(logp[i, start + k - 1, sequences[i][start + k]])
        per_question[owners[i]].append(total)
    return [_logsumexp(values) for values in per_question]


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))
