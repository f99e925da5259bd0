"""Shared fixtures. The real SmolLM2-135M-Instruct model is converted once into a persistent cache
(``LIMINAL_CACHE_DIR``, default ``.cache/`` in the repository) and loaded once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("LIMINAL_CACHE_DIR", str(REPO / ".cache"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def smollm2_ref():  # type: ignore[no-untyped-def]
    """The ``Model`` reference of the offline alias."""
    from liminal_core.model_ref import Model

    return Model(id="smollm2-135m-instruct")


@pytest.fixture(scope="session")
def smollm2(smollm2_ref):  # type: ignore[no-untyped-def]
    """The real SmolLM2 model on CPU in fp32, loaded once (cached inference copy)."""
    from liminal_core.loading import load_causal_lm

    return load_causal_lm(smollm2_ref, device="cpu")


@pytest.fixture(scope="session")
def smollm2_dir(smollm2_ref) -> Path:  # type: ignore[no-untyped-def]
    """The converted Hugging Face directory of SmolLM2."""
    from liminal_core.loading import resolve_model_dir

    return resolve_model_dir(smollm2_ref)
