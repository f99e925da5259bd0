"""One training forward for both methods: the student's loss, and for liminal training the base model's
distribution taken from the same weights with the LoRA adapter disabled (no second copy in memory).

``fused=True`` runs the decoder body for hidden states and hands them to ``losses.fused_loss`` (only the
loss-carrying positions are projected to the vocabulary, in chunks); ``fused=False`` is the plain
full-logits path. Both give the same numbers (see tests/training/test_fused_losses.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from liminal_core.training.losses import KlScope, LossOutput, fused_loss, reference_loss


def split_causal_lm(model: Any) -> tuple[Any, Any]:
    """The decoder body and the output projection of a (possibly PEFT-wrapped) causal LM."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner.get_decoder(), inner.get_output_embeddings()


@contextlib.contextmanager
def adapter_disabled(model: Any) -> Iterator[None]:
    """Run the model as its base: the PEFT adapter switched off, no gradients."""
    if not hasattr(model, "disable_adapter"):
        raise TypeError("the base distribution needs a PEFT model (an adapter to switch off)")
    with torch.no_grad(), model.disable_adapter():
        yield


def autocast_dtype(model: Any) -> torch.dtype | None:
    """bf16 when a CUDA model holds bf16 base weights next to fp32 adapter weights: the forward then runs under
    autocast, so the LoRA matmuls take the bf16 activations as they are instead of fp32 copies of them
    (the adapter weights, and so the optimizer's updates, stay fp32)."""
    body, _ = split_causal_lm(model)
    weight = body.get_input_embeddings().weight
    if weight.device.type == "cuda" and weight.dtype == torch.bfloat16:
        return torch.bfloat16
    return None


def compute_loss(
    model: Any,
    batch: dict[str, torch.Tensor],
    *,
    lam: float,
    temperature: float,
    kl_scope: KlScope,
    fused: bool,
    with_base: bool,
    chunk_size: int = 1024,
) -> LossOutput:
    """The loss of one micro-batch. The base forward runs only when ``with_base`` and ``lam != 0``."""
    dtype = autocast_dtype(model)
    precision = torch.autocast("cuda", dtype=dtype) if dtype is not None else contextlib.nullcontext()
    with precision:
        return _compute_loss(model, batch, lam, temperature, kl_scope, fused, with_base, chunk_size)


def _compute_loss(
    model: Any,
    batch: dict[str, torch.Tensor],
    lam: float,
    temperature: float,
    kl_scope: KlScope,
    fused: bool,
    with_base: bool,
    chunk_size: int,
) -> LossOutput:
    input_ids, attention_mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    need_base = with_base and lam != 0.0
    if fused:
        body, head = split_causal_lm(model)
        if getattr(head, "bias", None) is None:
            hidden = body(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
            base_hidden = None
            if need_base:
                with adapter_disabled(model):
                    base_hidden = body(
                        input_ids=input_ids, attention_mask=attention_mask, use_cache=False
                    ).last_hidden_state
            return fused_loss(
                hidden,
                head.weight,
                labels,
                attention_mask,
                base_hidden,
                lam=lam,
                temperature=temperature,
                kl_scope=kl_scope,
                chunk_size=chunk_size,
            )
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    base_logits = None
    if need_base:
        with adapter_disabled(model):
            base_logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    return reference_loss(
        logits, labels, attention_mask, base_logits, lam=lam, temperature=temperature, kl_scope=kl_scope
    )


def prepare_model(model: Any, *, compile: bool) -> None:
    """Ready a PEFT model for training: under autocast, LoRA layers take their inputs in the compute dtype
    (no fp32 copies); compile each decoder layer (one graph reused by every layer) when asked."""
    if autocast_dtype(model) is not None:
        for module in model.modules():
            if hasattr(module, "cast_input_dtype_enabled"):
                module.cast_input_dtype_enabled = False
    if not compile:
        return
    body, _ = split_causal_lm(model)
    for layer in body.layers:
        layer.compile(dynamic=True)
