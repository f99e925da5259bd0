"""The LoRA backends: PEFT (default) and Unsloth (when installed and CUDA is present; imported lazily)."""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from liminal_core.errors import ModelUnavailable
from liminal_core.loading import LoadedModel, load_causal_lm, load_tokenizer, resolve_model_dir
from liminal_core.model_ref import Model
from liminal_core.specs import FinetuneSpec


def choose_backend(requested: str) -> str:
    """``auto`` picks Unsloth only where it can run (installed and CUDA), else PEFT."""
    unsloth_ok = importlib.util.find_spec("unsloth") is not None and torch.cuda.is_available()
    if requested == "unsloth" and not unsloth_ok:
        raise ModelUnavailable(
            "backend: 'unsloth' needs the unsloth package and a CUDA device",
            hint="install the gpu extra on a CUDA host, or use backend 'peft'",
        )
    if requested == "auto":
        return "unsloth" if unsloth_ok else "peft"
    return requested


def build_lora_model(spec: FinetuneSpec, backend: str, device: torch.device | None) -> tuple[Any, Any, LoadedModel]:
    """The student (a PEFT model with a fresh LoRA adapter) and its tokenizer."""
    ref = Model.from_name(spec.model_name)
    if backend == "unsloth":
        from unsloth import FastLanguageModel

        path = resolve_model_dir(ref)
        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=str(path), max_seq_length=spec.max_seq_length, dtype=torch.bfloat16, load_in_4bit=False
        )
        model = FastLanguageModel.get_peft_model(
            model,
            r=spec.lora_rank,
            lora_alpha=spec.resolved_alpha,
            lora_dropout=spec.lora_dropout,
            target_modules=list(spec.target_modules),
            bias="none",
            use_gradient_checkpointing=False,
            random_state=spec.seed,
        )
        tokenizer = load_tokenizer(path)
        loaded = LoadedModel(
            model=model, tokenizer=tokenizer, path=path, device=torch.device("cuda"), dtype=torch.bfloat16
        )
        return model, tokenizer, loaded
    from peft import LoraConfig, get_peft_model

    loaded = load_causal_lm(ref, device=device, cached=False)
    torch.manual_seed(spec.seed)
    config = LoraConfig(
        r=spec.lora_rank,
        lora_alpha=spec.resolved_alpha,
        lora_dropout=spec.lora_dropout,
        target_modules=list(spec.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(loaded.model, config)
    return model, loaded.tokenizer, loaded
