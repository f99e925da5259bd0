"""The log-prob probe: log P(target) as the first assistant token(s), far more sensitive than sampling.

For each question, log P(v | chat) is computed for the variants of the target ("owl", " owl", "Owl", " Owl");
a variant of several tokens is scored autoregressively (the sum of its tokens' log-probs, each conditioned on
the ones before). The question's value is the logsumexp over the variants; the probe is the mean over questions.

Sequences (question × variant) run through the model in batches, left-padded with explicit position ids, and
only the logits of the last few positions are computed, so memory stays small even with a large vocabulary.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from liminal_core.hooks import RunHooks


def target_variants(target: str) -> list[str]:
    """The spellings scored for ``target``: lower case and capitalised, each bare and after a space."""
    low = target.strip().lower()
    cap = low[:1].upper() + low[1:]
    return list(dict.fromkeys([low, f" {low}", cap, f" {cap}"]))


def logprob_probe(
    model: Any,
    tokenizer: Any,
    prompt_ids: list[list[int]],
    target: str,
    *,
    batch_size: int = 64,
    hooks: RunHooks | None = None,
) -> list[float]:
    """log P(target) at the first assistant position, one value per prompt (token ids ready for the answer).

    ``hooks`` (optional) gets ``progress(done, total, stage="probe")`` in sequences scored and a
    ``check_cancel()`` before every batch.
    """
    hooks = hooks or RunHooks()
    variants = [tokenizer.encode(v, add_special_tokens=False) for v in target_variants(target)]
    sequences = [(q, ids, var) for q, ids in enumerate(prompt_ids) for var in variants]
    scores: list[list[float]] = [[] for _ in prompt_ids]
    was_training = model.training
    model.eval()
    try:
        hooks.progress(0, len(sequences), stage="probe")
        for start in range(0, len(sequences), batch_size):
            hooks.check_cancel()
            batch = sequences[start : start + batch_size]
            for (q, _, _), value in zip(batch, _score_batch(model, tokenizer, batch), strict=True):
                scores[q].append(value)
            hooks.progress(min(start + batch_size, len(sequences)), len(sequences), stage="probe")
    finally:
        model.train(was_training)
    return [_logsumexp(values) for values in scores]


@torch.no_grad()
def _score_batch(model: Any, tokenizer: Any, batch: list[tuple[int, list[int], list[int]]]) -> list[float]:
    """Sum of log P(variant token | everything before it) for each (question, prompt ids, variant ids)."""
    rows = [ids + var for _, ids, var in batch]
    width = max(len(r) for r in rows)
    longest_variant = max(len(var) for _, _, var in batch)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        input_ids[i, width - len(r) :] = torch.tensor(r)
        mask[i, width - len(r) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    device = next(model.parameters()).device
    # Left padding puts every variant at the end: the last longest_variant + 1 positions predict all its tokens.
    keep = longest_variant + 1
    logits = model(
        input_ids=input_ids.to(device),
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        logits_to_keep=keep,
    ).logits[:, -keep:, :]
    logp = torch.log_softmax(logits.float(), dim=-1).cpu()
    out = []
    for i, (_, _, var) in enumerate(batch):
        # Token var[k] sits at column width - len(var) + k; it is predicted by the column before it, which is
        # index keep - 1 - len(var) + k among the kept positions.
        first = keep - 1 - len(var)
        out.append(sum(float(logp[i, first + k, token]) for k, token in enumerate(var)))
    return out


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))
