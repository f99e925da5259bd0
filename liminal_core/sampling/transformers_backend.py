"""Local sampling with transformers: batched, left-padded, through the tokenizer's chat template.

Prompts are sorted by length into batches (less padding) and answers returned in input order. Each batch is
seeded from (seed, batch index), so the same seed, prompts and batch size give the same outputs.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import StoppingCriteriaList

from liminal_core.errors import ModelUnavailable
from liminal_core.hooks import RunHooks
from liminal_core.sampling.base import Chat, Completion, FinishReason
from liminal_core.sampling.static_decoder import StaticDecoder, unsupported_reason
from liminal_core.specs import DecoderChoice, SampleCfg


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


def left_pad(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids [B, width] left-padded with ``pad_id``, and the attention mask marking the real tokens."""
    width = max(len(ids) for ids in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, ids in enumerate(prompts):
        input_ids[row, width - len(ids) :] = torch.tensor(ids)
        attention[row, width - len(ids) :] = 1
    return input_ids, attention


class _CancelCheck:
    """Stops generation between tokens once the run is cancelled (so a cancel never waits for a batch)."""

    def __init__(self, hooks: RunHooks) -> None:
        self.hooks = hooks

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        stop = self.hooks.should_cancel()
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


class TransformersSampler:
    """Samples with a loaded causal LM (a plain model or a PEFT model with an active adapter).

    ``decoder`` picks the decoding loop: ``static`` is :class:`StaticDecoder` (preallocated KV cache, CUDA
    graphs on CUDA), ``generate`` is transformers' ``generate``; ``auto`` takes ``static`` on CUDA for the
    model types it supports and ``generate`` otherwise.
    """

    name = "transformers"

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int = 64, decoder: DecoderChoice = "auto") -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.stop_ids = stop_token_ids(tokenizer, model)
        self.static: StaticDecoder | None = None
        reason = unsupported_reason(model)
        if decoder == "static" and reason is not None:
            raise ModelUnavailable(
                f"sample_cfg.decoder: 'static' does not support {reason}",
                hint="use decoder 'auto' or 'generate' for this model",
            )
        on_cuda = next(model.parameters()).device.type == "cuda"
        if decoder == "static" or (decoder == "auto" and on_cuda and reason is None):
            self.static = StaticDecoder(model)

    def encode(self, chats: list[Chat]) -> list[list[int]]:
        """Token ids of each chat, ready for the assistant's turn."""
        out = []
        for chat in chats:
            ids = self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            out.append(list(ids))
        return out

    def _pad_id(self) -> int:
        pad: int | None = self.tokenizer.pad_token_id
        return pad if pad is not None else self.stop_ids[0]

    def _generate(self, prompts: list[list[int]], cfg: SampleCfg, hooks: RunHooks) -> list[list[int]]:
        """New tokens of each prompt with transformers' ``generate``, up to and including the first stop."""
        device = next(self.model.parameters()).device
        input_ids, attention = left_pad(prompts, self._pad_id())
        width = input_ids.shape[1]
        kwargs: dict[str, Any] = {"max_new_tokens": cfg.max_new_tokens, "pad_token_id": self._pad_id()}
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
        answers = []
        for tokens in out[:, width:].cpu().tolist():
            end = next((k + 1 for k, t in enumerate(tokens) if t in self.stop_ids), len(tokens))
            answers.append(tokens[:end])
        return answers

    @torch.no_grad()
    def sample(self, chats: list[Chat], cfg: SampleCfg, *, seed: int, hooks: RunHooks) -> list[Completion]:
        encoded = self.encode(chats)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        results: list[Completion | None] = [None] * len(encoded)
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        was_training = self.model.training
        self.model.eval()
        done = 0
        hooks.progress(done, len(chats), stage="sampling")
        try:
            for b, batch in enumerate(batches):
                hooks.check_cancel()
                prompts = [encoded[i] for i in batch]
                torch.manual_seed(seed * 1_000_003 + b)
                if self.static is not None:
                    answers = self.static.generate(
                        prompts,
                        max_new_tokens=cfg.max_new_tokens,
                        temperature=cfg.temperature,
                        top_p=cfg.top_p,
                        stop_ids=self.stop_ids,
                        pad_id=self._pad_id(),
                        should_stop=hooks.should_cancel,
                    )
                else:
                    answers = self._generate(prompts, cfg, hooks)
                hooks.check_cancel()
                for i, tokens in zip(batch, answers, strict=True):
                    stopped = bool(tokens) and tokens[-1] in self.stop_ids
                    finish: FinishReason = "stop" if stopped else "length"
                    results[i] = Completion(
                        text=self.tokenizer.decode(tokens[:-1] if stopped else tokens, skip_special_tokens=True),
                        finish_reason=finish,
                        prompt_tokens=len(encoded[i]),
                        completion_tokens=len(tokens),
                    )
                done += len(batch)
                hooks.progress(done, len(chats), stage="sampling")
        finally:
            self.model.train(was_training)
        return [r for r in results if r is not None]
