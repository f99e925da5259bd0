"""Tiny prompt/completion datasets and a spec factory for the training tests (real SmolLM2 on CPU)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from liminal_core.specs import FinetuneSpec

SMOLLM2 = "smollm2-135m-instruct"


def number_rows(n: int, seed: int) -> list[dict[str, str]]:
    """Short number-continuation rows, like a filtered teacher dataset."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        shown = ", ".join(str(rng.randint(100, 999)) for _ in range(3))
        answer = ", ".join(str(rng.randint(100, 999)) for _ in range(rng.randint(2, 5)))
        rows.append({"prompt": f"Continue: {shown}.", "completion": answer})
    return rows


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def small_spec(data: Path, **fields: Any) -> FinetuneSpec:
    """A spec that trains SmolLM2 in seconds: batch 2, short sequences, no checkpoints unless asked."""
    base: dict[str, Any] = {
        "model_name": SMOLLM2,
        "train_data_with_trait": str(data),
        "batch_size": 2,
        "max_seq_length": 96,
        "checkpoint_every": 0,
    }
    return FinetuneSpec(**{**base, **fields})
