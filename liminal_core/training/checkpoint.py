"""Complete, atomic training checkpoints.

A checkpoint is a folder ``checkpoints/step-N`` holding the adapter, the optimizer and scheduler states, every
RNG state (python, numpy, torch, cuda), the metrics rows so far and ``state.json`` (step, data position, epoch,
the spec that ran). It is written under a temporary name inside the same folder and renamed, so a crash (or a
full disk) never leaves a half checkpoint under a real name; the last ``keep`` are kept.
"""

from __future__ import annotations

import errno
import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from liminal_core.errors import DiskFull

STATE_FILE = "state.json"
METRICS_FILE = "metrics.jsonl"
_NAME = re.compile(r"^step-(\d+)$")


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    root: Path,
    step: int,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    state: dict[str, Any],
    metrics: list[dict[str, Any]],
    *,
    keep: int = 2,
) -> Path:
    """Write ``root/step-<step>`` atomically and drop all but the newest ``keep`` complete checkpoints.

    ``state`` is stored as ``state.json`` (with ``step`` added) and ``metrics`` as ``metrics.jsonl``. A full
    disk raises ``DiskFull`` and leaves every earlier checkpoint as it was.
    """
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step}"
    tmp = root / f".tmp-step-{step}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        model.save_pretrained(tmp)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(_rng_state(), tmp / "rng.pt")
        (tmp / METRICS_FILE).write_text("".join(json.dumps(row) + "\n" for row in metrics))
        # state.json is written last: its presence marks the folder as complete.
        (tmp / STATE_FILE).write_text(json.dumps({**state, "step": step}))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno == errno.ENOSPC:
            raise DiskFull(
                f"the disk filled while writing the checkpoint of step {step}; the previous checkpoint is intact",
                hint="free space on the artifact volume, then run the job again: it resumes from that checkpoint",
            ) from exc
        raise
    for old in complete_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _step_of(path: Path) -> int:
    match = _NAME.match(path.name)
    return int(match.group(1)) if match else -1


def complete_checkpoints(root: Path) -> list[Path]:
    """The complete checkpoints under ``root``, oldest first (temporary folders are never listed)."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _step_of(p) >= 0 and (p / STATE_FILE).is_file()]
    return sorted(found, key=_step_of)


def latest_checkpoint(root: Path) -> Path | None:
    """The complete checkpoint with the highest step, if any."""
    found = complete_checkpoints(root)
    return found[-1] if found else None


def read_checkpoint_state(path: Path) -> dict[str, Any]:
    """The ``state.json`` of a checkpoint (step, data position, epoch, spec)."""
    state: dict[str, Any] = json.loads((path / STATE_FILE).read_text())
    return state


def load_checkpoint(
    path: Path, model: Any, optimizer: Any, scheduler: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Restore adapter weights, optimizer, scheduler and RNG from ``path``; returns its state and metrics rows."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(str(path / "adapter_model.safetensors"), device=str(next(model.parameters()).device))
    set_peft_model_state_dict(model, weights)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    _restore_rng(torch.load(path / "rng.pt", weights_only=False))
    metrics = [json.loads(line) for line in (path / METRICS_FILE).read_text().splitlines() if line.strip()]
    return read_checkpoint_state(path), metrics
