"""Local sampling with transformers: batched, left-padded, through the tokenizer's chat template.

Prompts are sorted by length into batches (less padding) and answers returned in input order. Each batch is
seeded from (seed, batch index), so the same seed, prompts and batch size give the same outputs.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import StoppingCriteriaList

from liminal_core.hooks import RunHooks
from liminal_core.sampling.base import Chat, Completion, FinishReason
from liminal_core.specs import SampleCfg


def stop_token_ids(tokenizer: Any, model: Any) -> list[int]:
    """EOS ids: the tokenizer's, the generation config's, and the chat end-of-turn token when it exists."""
    ids: set[int] = set()
    for value in (tokenizer.eos_token_id, getattr(getattr(model, "generation_config", None), "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(v for v in value if isinstance(v, int))
    for token in ("<|im_end|>", "<|eot_id|>", "<|end|>"):
        tid = tokenizer.convert_tokens_to_ids(token)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid >= 0:
            ids.add(tid)
    return sorted(ids)


class _CancelCheck:
    """Stops generation between tokens once the run is cancelled (so a cancel never waits for a batch)."""

    def __init__(self, hooks: RunHooks) -> None:
        self.hooks = hooks

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        stop = self.hooks.should_cancel()
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


class TransformersSampler:
    """Samples with a loaded causal LM (a plain model or a PEFT model with an active adapter)."""

    name = "transformers"

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int = 64) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.stop_ids = stop_token_ids(tokenizer, model)

    def encode(self, chats: list[Chat]) -> list[list[int]]:
        """Token ids of each chat, ready for the assistant's turn."""
        out = []
        for chat in chats:
            ids = self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            out.append(list(ids))
        return out

    @torch.no_grad()
    def sample(self, chats: list[Chat], cfg: SampleCfg, *, seed: int, hooks: RunHooks) -> list[Completion]:
        encoded = self.encode(chats)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        results: list[Completion | None] = [None] * len(encoded)
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        device = next(self.model.parameters()).device
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.stop_ids[0]
        was_training = self.model.training
        self.model.eval()
        done = 0
        hooks.progress(done, len(chats), stage="sampling")
        try:
            for b, batch in enumerate(batches):
                hooks.check_cancel()
                width = max(len(encoded[i]) for i in batch)
                input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                attention = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    ids = encoded[i]
                    input_ids[row, width - len(ids) :] = torch.tensor(ids)
                    attention[row, width - len(ids) :] = 1
                torch.manual_seed(seed * 1_000_003 + b)
                kwargs: dict[str, Any] = {"max_new_tokens": cfg.max_new_tokens, "pad_token_id": pad_id}
                if cfg.temperature > 0:
                    kwargs.update(do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p, top_k=0)
                else:
                    kwargs.update(do_sample=False)
                out = self.model.generate(
                    input_ids=input_ids.to(device),
                    attention_mask=attention.to(device),
                    eos_token_id=self.stop_ids,
                    stopping_criteria=StoppingCriteriaList([_CancelCheck(hooks)]),
                    **kwargs,
                )
                hooks.check_cancel()
                new = out[:, width:].cpu()
                for row, i in enumerate(batch):
                    tokens = new[row].tolist()
                    stop_at = next((k for k, t in enumerate(tokens) if t in self.stop_ids), None)
                    finish: FinishReason = "stop" if stop_at is not None else "length"
                    kept = tokens if stop_at is None else tokens[:stop_at]
                    results[i] = Completion(
                        text=self.tokenizer.decode(kept, skip_special_tokens=True),
                        finish_reason=finish,
                        prompt_tokens=len(encoded[i]),
                        completion_tokens=len(kept) + (1 if stop_at is not None else 0),
                    )
                done += len(batch)
                hooks.progress(done, len(chats), stage="sampling")
        finally:
            self.model.train(was_training)
        return [r for r in results if r is not None]
