"""Batched decoding for Llama-family models with a preallocated KV cache.

The decoder runs the model's own modules (embeddings, norms, projections with any active LoRA adapter, MLPs,
rotary embedding, LM head) and replaces only what ``generate`` does around them: the cache is one tensor per
layer allocated for the whole answer; the attention mask is a boolean tensor updated in place; the prefix
that every prompt of a batch starts with (the chat template's system turn, the teacher's system prompt) is
run once and its keys and values copied to every row; the prompt's logits are computed for its last position
only. On CUDA the one-token step is captured once per batch shape in a CUDA graph and replayed, so a step
costs one launch instead of a few hundred kernel launches from Python.

Sampling follows ``generate``: fp32 logits, temperature, then the top-p cut, then a multinomial draw from the
global generator (seeded by the caller). A captured graph bakes in the adapter that was active when it was
captured: use one decoder per active adapter (the samplers create one per target).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

SUPPORTED_MODEL_TYPES = frozenset({"llama", "qwen2", "mistral"})
WIDTH_BUCKET = 16
"""On CUDA, prompt widths are rounded up to a multiple of this so batches of similar lengths share a graph."""


def _base(model: Any) -> Any:
    """The causal LM itself, under a PEFT wrapper when there is one (its LoRA layers stay in place)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def unsupported_reason(model: Any) -> str | None:
    """Why ``model`` cannot use the static decoder, or None when it can."""
    config = _base(model).config
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        return f"model type '{model_type}' (supported: {', '.join(sorted(SUPPORTED_MODEL_TYPES))})"
    if getattr(config, "use_sliding_window", False) or (
        model_type == "mistral" and getattr(config, "sliding_window", None) is not None
    ):
        return "sliding-window attention"
    return None


def shared_prefix_length(prompts: list[list[int]]) -> int:
    """How many leading tokens all prompts share, leaving each prompt at least one token of its own."""
    first = prompts[0]
    n = min(len(p) for p in prompts) - 1
    for i in range(max(n, 0)):
        token = first[i]
        if any(p[i] != token for p in prompts):
            return i
    return max(n, 0)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def pick_next(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """The next token of each row from its logits [B, V], as ``generate`` picks it."""
    if temperature == 0:
        return logits.argmax(-1)
    scores = logits.float() / temperature
    if top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=False)
        cumulative = sorted_scores.softmax(-1).cumsum(-1)
        remove = cumulative <= 1 - top_p
        remove[..., -1] = False
        scores = scores.scatter(-1, order, sorted_scores.masked_fill(remove, float("-inf")))
    return torch.multinomial(scores.softmax(-1), 1).squeeze(1)


@dataclass
class _Batch:
    """The buffers one batch shape decodes in; on CUDA the step's graph reads and writes exactly these."""

    caches: list[tuple[torch.Tensor, torch.Tensor]]
    valid: torch.Tensor  # [B, L] bool: slots holding a real token
    token: torch.Tensor  # [B, 1] the token fed to the step
    position: torch.Tensor  # [B, 1] its rotary position
    slot: torch.Tensor  # [1] the cache slot it is written to
    logits: torch.Tensor | None = None  # [B, V] the step's output (the graph's output buffer)
    graph: Any = None


class StaticDecoder:
    """Samples continuations of token-id prompts with a Llama-family causal LM (plain or PEFT-wrapped)."""

    def __init__(self, model: Any, *, cuda_graph: bool | None = None) -> None:
        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"the static decoder does not support {reason}")
        base = _base(model)
        config = base.config
        self.body = base.model
        self.lm_head = base.lm_head
        self.layers = list(self.body.layers[: config.num_hidden_layers])
        self.kv_heads = config.num_key_value_heads
        self.head_dim = self.layers[0].self_attn.head_dim
        weight = self.body.embed_tokens.weight
        self.device, self.dtype = weight.device, weight.dtype
        self.cuda_graph = self.device.type == "cuda" if cuda_graph is None else cuda_graph
        self._batch: tuple[tuple[int, int], _Batch] | None = None

    def _attention(
        self,
        layer: Any,
        h: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        cache: tuple[torch.Tensor, torch.Tensor],
        slots: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        attn = layer.self_attn
        batch, q_len, _ = h.shape
        shape = (batch, q_len, -1, self.head_dim)
        q = attn.q_proj(h).view(shape).transpose(1, 2)
        k = attn.k_proj(h).view(shape).transpose(1, 2)
        v = attn.v_proj(h).view(shape).transpose(1, 2)
        cos, sin = (t.unsqueeze(1) for t in rope)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        k_cache, v_cache = cache
        k_cache.index_copy_(2, slots, k)
        v_cache.index_copy_(2, slots, v)
        out = F.scaled_dot_product_attention(q, k_cache, v_cache, attn_mask=mask, scale=attn.scaling, enable_gqa=True)
        return attn.o_proj(out.transpose(1, 2).reshape(batch, q_len, -1))

    def _last_logits(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor,
        slots: torch.Tensor,
        mask: torch.Tensor,
        caches: list[tuple[torch.Tensor, torch.Tensor]],
    ) -> torch.Tensor:
        """Run the model on ``ids`` [B, q] written to cache ``slots``; logits [B, V] of the last position."""
        x = self.body.embed_tokens(ids)
        rope = self.body.rotary_emb(x, positions)
        for layer, cache in zip(self.layers, caches, strict=True):
            x = x + self._attention(layer, layer.input_layernorm(x), rope, cache, slots, mask)
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return self.lm_head(self.body.norm(x[:, -1]))

    def _buffers(self, batch: int, length: int) -> _Batch:
        key = (batch, length)
        if self._batch is not None and self._batch[0] == key:
            return self._batch[1]
        self._batch = None  # free the previous shape's cache and graph first
        shape = (batch, self.kv_heads, length, self.head_dim)
        caches = [
            (
                torch.zeros(shape, dtype=self.dtype, device=self.device),
                torch.zeros(shape, dtype=self.dtype, device=self.device),
            )
            for _ in self.layers
        ]
        state = _Batch(
            caches=caches,
            valid=torch.zeros((batch, length), dtype=torch.bool, device=self.device),
            token=torch.zeros((batch, 1), dtype=torch.long, device=self.device),
            position=torch.zeros((batch, 1), dtype=torch.long, device=self.device),
            slot=torch.zeros(1, dtype=torch.long, device=self.device),
        )
        self._batch = (key, state)
        return state

    def _prefill_shared(self, prefix: list[int], state: _Batch) -> None:
        """Run the prefix every prompt of the batch starts with once, and copy its keys and values into
        slots [0, len(prefix)) of every row."""
        n = len(prefix)
        shape = (1, self.kv_heads, n, self.head_dim)
        caches = [
            (
                torch.empty(shape, dtype=self.dtype, device=self.device),
                torch.empty(shape, dtype=self.dtype, device=self.device),
            )
            for _ in self.layers
        ]
        slots = torch.arange(n, device=self.device)
        causal = (slots[:, None] >= slots[None, :])[None, None]
        ids = torch.tensor([prefix], dtype=torch.long, device=self.device)
        self._last_logits(ids, slots[None, :], slots, causal, caches)
        for (k, v), (k_one, v_one) in zip(state.caches, caches, strict=True):
            k[:, :, :n] = k_one
            v[:, :, :n] = v_one

    def _step_eager(self, state: _Batch) -> torch.Tensor:
        mask = state.valid[:, None, None, :]
        return self._last_logits(state.token, state.position, state.slot, mask, state.caches)

    def _step(self, state: _Batch) -> torch.Tensor:
        """Logits after feeding ``state.token`` at ``state.slot``: the captured graph on CUDA."""
        if not self.cuda_graph:
            return self._step_eager(state)
        if state.graph is None:
            # Warm-up on a side stream, then capture. Whatever the warm-up writes into the cache at the current
            # slot is written again by the real step before anything reads it.
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                self._step_eager(state)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                state.logits = self._step_eager(state)
            state.graph = graph
        state.graph.replay()
        assert state.logits is not None
        return state.logits

    @torch.no_grad()
    def generate(
        self,
        prompts: list[list[int]],
        *,
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        stop_ids: list[int],
        pad_id: int,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> list[list[int]]:
        """The sampled tokens of each prompt, up to and including its first stop token (or ``max_new_tokens``).

        ``should_stop`` is asked between tokens; when it answers True the batch ends early (callers raise
        their cancel error after it returns).
        """
        batch = len(prompts)
        shared = shared_prefix_length(prompts) if batch > 1 else 0
        width = shared + max(len(p) - shared for p in prompts)
        if self.cuda_graph:
            width = shared + -(-(width - shared) // WIDTH_BUCKET) * WIDTH_BUCKET
        length = width + max_new_tokens
        state = self._buffers(batch, length)
        state.valid.zero_()
        if shared:
            self._prefill_shared(prompts[0][:shared], state)
            state.valid[:, :shared] = True

        # Each row's own part, left-padded into slots [shared, width); positions continue after the prefix.
        ids = torch.full((batch, width - shared), pad_id, dtype=torch.long)
        positions = torch.zeros((batch, width - shared), dtype=torch.long)
        own = torch.zeros((batch, width - shared), dtype=torch.bool)
        for row, prompt in enumerate(prompts):
            start = width - len(prompt)
            ids[row, start:] = torch.tensor(prompt[shared:])
            positions[row, start:] = torch.arange(shared, len(prompt))
            own[row, start:] = True
        state.valid[:, shared:width] = own.to(self.device)
        lengths = torch.tensor([len(p) for p in prompts], dtype=torch.long, device=self.device)

        # Causal over real tokens; a padding slot sees itself only, so no softmax row is empty.
        slots = torch.arange(shared, width, device=self.device)
        keys = torch.arange(length, device=self.device)[None, :]
        mask = state.valid[:, None, None, :] & (slots[:, None] >= keys)[None, None]
        mask |= (slots[:, None] == keys)[None, None]
        logits = self._last_logits(ids.to(self.device), positions.to(self.device), slots, mask, state.caches)

        stops = torch.tensor(stop_ids, dtype=torch.long, device=self.device)
        out = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=self.device)
        finished = torch.zeros(batch, dtype=torch.bool, device=self.device)
        steps = 0
        for step in range(max_new_tokens):
            token = pick_next(logits, temperature, top_p)
            out[:, step] = torch.where(finished, pad_id, token)
            finished |= torch.isin(token, stops)
            steps = step + 1
            if step == max_new_tokens - 1 or should_stop() or (step % 4 == 3 and bool(finished.all())):
                break
            state.token.copy_(token[:, None])
            state.position.copy_((lengths + step)[:, None])
            state.slot.fill_(width + step)
            state.valid[:, width + step] = True
            logits = self._step(state)

        answers = []
        for row in out[:, :steps].cpu().tolist():
            end = next((k + 1 for k, t in enumerate(row) if t in stop_ids), len(row))
            answers.append(row[:end])
        return answers
