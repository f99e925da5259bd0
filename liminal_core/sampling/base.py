"""The sampler interface and the choice of backend."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Literal, Protocol

from liminal_core.errors import ModelUnavailable
from liminal_core.hooks import RunHooks
from liminal_core.model_ref import Model
from liminal_core.specs import DecoderChoice, SampleCfg

Chat = list[dict[str, str]]
FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class Completion:
    """One sampled answer. ``finish_reason`` is ``stop`` (end of turn) or ``length`` (max_new_tokens)."""

    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int


class Sampler(Protocol):
    """Samples one completion per chat, in input order. ``hooks.check_cancel()`` runs between batches and
    ``hooks.progress(done, total, stage="sampling")`` counts chats answered."""

    name: str

    def sample(self, chats: list[Chat], cfg: SampleCfg, *, seed: int, hooks: RunHooks) -> list[Completion]: ...


def make_sampler(
    model: Model,
    backend: str = "auto",
    *,
    batch_size: int = 64,
    concurrency: int = 16,
    decoder: DecoderChoice = "auto",
) -> Sampler:
    """The sampler for ``model``: the OpenAI-compatible client for ``openai`` models; otherwise vLLM when asked
    for (or, with ``auto``, when it is installed and CUDA is present), else local transformers with ``decoder``
    as its decoding loop."""
    if model.type == "openai" or backend == "openai":
        if model.type != "openai":
            raise ModelUnavailable(
                f"backend 'openai' needs a model of type 'openai', not '{model.type}'",
                hint="set model.type to 'openai' or pick another backend",
            )
        from liminal_core.sampling.openai_backend import OpenAISampler

        return OpenAISampler(model, concurrency=concurrency)
    vllm_installed = importlib.util.find_spec("vllm") is not None
    if backend == "vllm" and not vllm_installed:
        raise ModelUnavailable(
            "backend 'vllm' was asked for but vllm is not installed here",
            hint="install vllm on a CUDA host, or use backend 'auto' or 'transformers'",
        )
    use_vllm = backend == "vllm"
    if backend == "auto" and vllm_installed:
        import torch

        use_vllm = torch.cuda.is_available()
    if use_vllm:
        from liminal_core.sampling.vllm_backend import VllmSampler

        return VllmSampler(model)
    from liminal_core.loading import load_causal_lm
    from liminal_core.sampling.transformers_backend import TransformersSampler

    loaded = load_causal_lm(model, cached=True)
    return TransformersSampler(loaded.model, loaded.tokenizer, batch_size=batch_size, decoder=decoder)
