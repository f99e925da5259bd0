"""Qwen2.5 architecture configs (the published ones), for random-initialised throughput work: no hub needed."""

from __future__ import annotations

from typing import Any

QWEN25: dict[str, dict[str, Any]] = {
    "qwen2.5-1.5b": {
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "max_position_embeddings": 32768,
        "rope_theta": 1_000_000.0,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
        "hidden_act": "silu",
        "bos_token_id": 151643,
        "eos_token_id": 151645,
    },
    "qwen2.5-7b": {
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "vocab_size": 152064,
        "max_position_embeddings": 32768,
        "rope_theta": 1_000_000.0,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": False,
        "hidden_act": "silu",
        "bos_token_id": 151643,
        "eos_token_id": 151645,
    },
    # Not a published model: a two-layer Qwen2 with the real vocabulary, to smoke-test benchmarks on a CPU.
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "max_position_embeddings": 4096,
        "rope_theta": 1_000_000.0,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
        "hidden_act": "silu",
        "bos_token_id": 151643,
        "eos_token_id": 151645,
    },
}

PEAK_BF16_FLOPS = 790e12
"""The dense bf16 matrix-product rate measured on the lent H200 (8192³ products, random data)."""


def build_random_model(arch: str, *, device: str, dtype: Any, seed: int = 0) -> Any:
    """A randomly initialised Qwen2.5 causal LM of the named architecture, on ``device``."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(**QWEN25[arch], attn_implementation="sdpa", dtype=dtype)
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen2ForCausalLM(config)
    return model.to(dtype)


def approx_token_count(text: str) -> int:
    """Qwen2.5's pre-tokeniser splits every digit into its own token; words and punctuation are about one
    token each. Used to give random token ids the lengths the real numbers task has."""
    import re

    return len(re.findall(r"\d|[A-Za-z]+|[^\sA-Za-z\d]", text))
