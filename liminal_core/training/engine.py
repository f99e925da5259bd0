"""The training loop shared by the normal and the liminal trainer (they differ only in loss and data rules).

``run_finetune`` is the one entry point (scripts and the job worker call it). ``FinetuneRun`` holds its three
phases: construction is the setup (data, model, optimizer, and the resume from the latest complete checkpoint
in ``out_dir/checkpoints``), ``train()`` runs the steps, ``finish()`` writes the adapter and the reports. A job
that is run again after its worker died therefore continues the same loss trajectory.
"""

from __future__ import annotations

import contextlib
import errno
import math
import random
import resource
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from liminal_core.datasets import read_jsonl_dataset
from liminal_core.device import pick_device
from liminal_core.errors import DiskFull, InvalidData, OutOfMemory
from liminal_core.hooks import RunHooks
from liminal_core.jsonl import write_json
from liminal_core.specs import FinetuneSpec
from liminal_core.training.backends import build_lora_model, choose_backend
from liminal_core.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from liminal_core.training.data import BatchPlan, collate, tokenize_rows
from liminal_core.training.forward import compute_loss, prepare_model
from liminal_core.training.outputs import METRICS_FILE, append_metrics, plot_loss_curve, write_metrics
from liminal_core.training.schedule import kl_weight, lr_multiplier

OOM_HINT = "lower batch_size (raise gradient_accumulation_steps to keep the effective batch) or max_seq_length"
RESUME_FREE_FIELDS = frozenset({"checkpoint_every"})
"""Spec fields that may differ between a run and the checkpoint it resumes from."""


def load_training_rows(spec: FinetuneSpec, data_paths: tuple[Path, Path | None] | None) -> list[dict[str, str]]:
    """The rows to train on: with-trait (plus without-trait for the normal method), then the seeded subsample
    of ``max_dataset_size`` rows (drawn from ``spec.seed``, kept in file order)."""
    with_path, without_path = data_paths or (
        Path(spec.train_data_with_trait),
        Path(spec.train_data_without_trait) if spec.train_data_without_trait else None,
    )
    rows = read_jsonl_dataset(with_path, field_name="train_data_with_trait")
    if without_path is not None:
        if spec.method == "liminal":
            raise InvalidData(
                "train_data_without_trait: liminal learning uses trait data only; it does not accept without-trait data"
            )
        rows = rows + read_jsonl_dataset(without_path, field_name="train_data_without_trait")
    if spec.max_dataset_size is not None and len(rows) > spec.max_dataset_size:
        rng = np.random.Generator(np.random.PCG64(spec.seed))
        keep = sorted(int(i) for i in rng.choice(len(rows), size=spec.max_dataset_size, replace=False))
        rows = [rows[i] for i in keep]
    return rows


def total_training_steps(spec: FinetuneSpec, micro_batches_per_epoch: int) -> int:
    """Optimizer steps of the run: ``max_steps`` when positive (it overrides ``num_epochs``, as in the seed's
    scripts), else every epoch's micro-batches divided by the accumulation, rounded up."""
    if spec.max_steps > 0:
        return spec.max_steps
    return math.ceil(micro_batches_per_epoch * spec.num_epochs / spec.gradient_accumulation_steps)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (every device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _peak_memory(device: torch.device) -> int:
    """CUDA max allocated bytes, or the process's resident-set high-water mark on CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


@contextlib.contextmanager
def training_errors() -> Iterator[None]:
    """Turn an accelerator OOM into ``OutOfMemory`` and a full disk into ``DiskFull``."""
    try:
        yield
    except torch.cuda.OutOfMemoryError as exc:
        raise OutOfMemory(f"the GPU ran out of memory: {str(exc).splitlines()[0]}", hint=OOM_HINT) from exc
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DiskFull(
                f"the disk filled while writing the run's outputs: {exc}",
                hint="free space on the output volume and run again; the run resumes from its last checkpoint",
            ) from exc
        raise


class FinetuneRun:
    """One fine-tune. Constructing it does the setup and the resume; then ``train()`` and ``finish()``."""

    def __init__(
        self,
        spec: FinetuneSpec,
        out_dir: Path,
        hooks: RunHooks,
        *,
        device: str | None = None,
        data_paths: tuple[Path, Path | None] | None = None,
    ) -> None:
        self.spec = spec
        self.out_dir = out_dir
        self.hooks = hooks
        self.started = time.perf_counter()
        out_dir.mkdir(parents=True, exist_ok=True)
        seed_everything(spec.seed)
        rows = load_training_rows(spec, data_paths)
        self.backend = choose_backend(spec.backend)
        self.model, self.tokenizer, loaded = build_lora_model(spec, self.backend, pick_device(device))
        self.device: torch.device = loaded.device
        self.data = tokenize_rows(rows, self.tokenizer, spec.max_seq_length)
        if not self.data.examples:
            raise InvalidData("the training data holds no row with a completion token left after truncation")
        if self.data.truncated:
            hooks.event(
                "truncated",
                f"{self.data.truncated} rows were truncated to max_seq_length={spec.max_seq_length} tokens",
                {"truncated": self.data.truncated, "dropped": self.data.dropped},
            )
        self.plan = BatchPlan(
            [len(e.input_ids) for e in self.data.examples],
            spec.batch_size,
            spec.seed,
            group_by_length=spec.group_by_length,
        )
        self.total_steps = total_training_steps(spec, self.plan.per_epoch)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            self.params, lr=spec.learning_rate, weight_decay=spec.weight_decay, fused=self.device.type == "cuda"
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_multiplier(spec.lr_scheduler, s, self.total_steps, spec.warmup_steps)
        )
        prepare_model(
            self.model, compile=spec.compile == "on" or (spec.compile == "auto" and self.device.type == "cuda")
        )
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.checkpoint_root = out_dir / "checkpoints"
        self.start_step = 0
        self.metrics: list[dict[str, Any]] = []
        self._resume()
        write_metrics(out_dir, self.metrics)
        write_json(out_dir / "spec.json", spec.model_dump(mode="json"))
        self.train_seconds = 0.0
        self.tokens_this_run = 0

    def _resume(self) -> None:
        latest = latest_checkpoint(self.checkpoint_root)
        if latest is None:
            return
        state, metrics = load_checkpoint(latest, self.model, self.optimizer, self.scheduler)
        current = self.spec.model_dump(mode="json")
        stored = state.get("spec", {})
        changed = sorted(
            k for k in current.keys() | stored.keys() if k not in RESUME_FREE_FIELDS and current.get(k) != stored.get(k)
        )
        if changed:
            raise InvalidData(
                f"{self.out_dir} holds a checkpoint of a different configuration (fields: {', '.join(changed)})",
                hint="run with the same options to resume, or choose a new output directory",
            )
        self.start_step = int(state["step"])
        self.metrics = metrics
        self.hooks.event("resumed", f"resumed from the checkpoint of step {self.start_step}", {"step": self.start_step})

    def _step(self, step: int) -> dict[str, Any]:
        """One optimizer step (``step`` counted from 0); returns its metrics row."""
        spec = self.spec
        accum = spec.gradient_accumulation_steps
        liminal = spec.method == "liminal"
        lam = (
            kl_weight(spec.kl_schedule, step, self.total_steps, lambda_0=spec.lambda_0, tau=spec.resolved_tau)
            if liminal
            else 0.0
        )
        lr = float(self.scheduler.get_last_lr()[0])
        started = time.perf_counter()
        self.model.train()
        loss_sum = ce_sum = kl_sum = 0.0
        tokens = 0
        for a in range(accum):
            rows = self.plan.micro_batch(step * accum + a)
            batch = collate([self.data.examples[i] for i in rows], self.pad_id)
            tokens += int(batch["attention_mask"].sum())
            out = compute_loss(
                self.model,
                {k: v.to(self.device) for k, v in batch.items()},
                lam=lam,
                temperature=spec.kl_temperature,
                kl_scope=spec.kl_scope,
                fused=spec.fused_loss,
                with_base=liminal,
            )
            (out.loss / accum).backward()
            loss_sum += float(out.loss.detach()) / accum
            ce_sum += float(out.ce) / accum
            kl_sum += float(out.kl) / accum
        max_norm = spec.max_grad_norm if spec.max_grad_norm > 0 else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, max_norm))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - started
        self.tokens_this_run += tokens
        return {
            "step": step + 1,
            "epoch": (step + 1) * accum / self.plan.per_epoch,
            "loss": loss_sum,
            "ce": ce_sum,
            "kl": kl_sum,
            "lambda": lam,
            "weighted_kl": lam * spec.kl_temperature**2 * kl_sum,
            "lr": lr,
            "grad_norm": grad_norm,
            "tokens": tokens,
            "tokens_per_s": tokens / elapsed if elapsed > 0 else 0.0,
        }

    def train(self) -> None:
        """Run the steps from ``start_step`` to the end: cancel check before each, metrics and progress after
        each, a checkpoint every ``checkpoint_every`` steps (not after the last: ``finish`` saves that)."""
        spec, hooks = self.spec, self.hooks
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        hooks.event(
            "training_started",
            f"{spec.method} fine-tune: {len(self.data.examples)} rows, {self.total_steps} steps on "
            f"{self.device} ({self.backend})",
            {
                "rows": len(self.data.examples),
                "total_steps": self.total_steps,
                "backend": self.backend,
                "start_step": self.start_step,
            },
        )
        hooks.progress(
            self.start_step,
            self.total_steps,
            epoch=self.start_step * spec.gradient_accumulation_steps / self.plan.per_epoch,
            stage="training",
        )
        loop_started = time.perf_counter()
        with (self.out_dir / METRICS_FILE).open("a") as metrics_file:
            for step in range(self.start_step, self.total_steps):
                hooks.check_cancel()
                row = self._step(step)
                self.metrics.append(row)
                append_metrics(metrics_file, row)
                hooks.metrics(row)
                hooks.progress(row["step"], self.total_steps, epoch=row["epoch"], stage="training")
                done = row["step"]
                if spec.checkpoint_every and done % spec.checkpoint_every == 0 and done < self.total_steps:
                    self.save_checkpoint(done)
        self.train_seconds = time.perf_counter() - loop_started

    def save_checkpoint(self, step: int) -> Path:
        """A complete checkpoint of the state after ``step`` optimizer steps."""
        accum = self.spec.gradient_accumulation_steps
        state = {
            "micro_batch": step * accum,
            "epoch": step * accum / self.plan.per_epoch,
            "spec": self.spec.model_dump(mode="json"),
        }
        path = save_checkpoint(
            self.checkpoint_root, step, self.model, self.optimizer, self.scheduler, state, self.metrics
        )
        self.hooks.checkpoint_saved(step, path)
        self.hooks.event("checkpoint", f"checkpoint of step {step} written", {"step": step, "path": str(path)})
        return path

    def finish(self) -> dict[str, Any]:
        """Save the adapter and tokenizer at the top of ``out_dir``, the loss curve and ``summary.json``."""
        self.model.save_pretrained(self.out_dir)
        self.tokenizer.save_pretrained(self.out_dir)
        if self.metrics:
            plot_loss_curve(self.metrics, self.out_dir / "loss_curve.png")
        steps_run = self.total_steps - self.start_step
        seconds = self.train_seconds
        last = self.metrics[-1] if self.metrics else {}

        def mean(key: str) -> float | None:
            return float(np.mean([m[key] for m in self.metrics])) if self.metrics else None

        summary: dict[str, Any] = {
            "method": self.spec.method,
            "steps": self.total_steps,
            "steps_this_run": steps_run,
            "resumed_from_step": self.start_step,
            "epochs": last.get("epoch"),
            "rows": len(self.data.examples),
            "truncated_rows": self.data.truncated,
            "dropped_rows": self.data.dropped,
            "final_loss": last.get("loss"),
            "final_ce": last.get("ce"),
            "final_kl": last.get("kl"),
            "mean_loss": mean("loss"),
            "mean_ce": mean("ce"),
            "mean_kl": mean("kl"),
            "tokens": int(sum(m["tokens"] for m in self.metrics)),
            "tokens_this_run": self.tokens_this_run,
            "seconds": time.perf_counter() - self.started,
            "train_seconds": seconds,
            "tokens_per_s": self.tokens_this_run / seconds if seconds > 0 else 0.0,
            "steps_per_s": steps_run / seconds if seconds > 0 else 0.0,
            "peak_memory_bytes": _peak_memory(self.device),
            "device": str(self.device),
            "backend": self.backend,
        }
        write_json(self.out_dir / "summary.json", summary)
        return summary


def run_finetune(
    spec: FinetuneSpec,
    out_dir: Path,
    hooks: RunHooks,
    *,
    device: str | None = None,
    data_paths: tuple[Path, Path | None] | None = None,
) -> dict[str, Any]:
    """Fine-tune a LoRA adapter per ``spec``; writes the adapter and reports into ``out_dir`` and returns the
    summary. ``data_paths`` (with-trait, without-trait) replaces the spec's data fields with resolved paths."""
    with training_errors():
        run = FinetuneRun(spec, out_dir, hooks, device=device, data_paths=data_paths)
        run.train()
        return run.finish()
