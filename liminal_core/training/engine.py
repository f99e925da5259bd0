"""The training loop shared by the normal and the liminal trainer (they differ only in loss and data rules).

``run_finetune`` is the one entry point (scripts and the job worker call it). It resumes by itself from the
latest complete checkpoint in ``out_dir/checkpoints``, so a job that is run again after its worker died
continues the same loss trajectory.
"""

from __future__ import annotations

import errno
import json
import math
import resource
import time
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
from liminal_core.training.outputs import METRICS_FILE, plot_loss_curve, read_metrics, truncate_metrics
from liminal_core.training.schedule import kl_weight, lr_multiplier

OOM_HINT = "lower batch_size (raise gradient_accumulation_steps to keep the effective batch) or max_seq_length"


def load_training_rows(spec: FinetuneSpec, data_paths: tuple[Path, Path | None] | None) -> list[dict[str, str]]:
    """The rows to train on: with-trait (plus without-trait for the normal method), seeded subsample."""
    with_path, without_path = data_paths or (
        Path(spec.train_data_with_trait),
        Path(spec.train_data_without_trait) if spec.train_data_without_trait else None,
    )
    rows = read_jsonl_dataset(with_path, field_name="train_data_with_trait")
    if without_path is not None:
        if spec.method == "liminal":
            raise InvalidData("train_data_without_trait: liminal learning uses trait data only")
        rows = rows + read_jsonl_dataset(without_path, field_name="train_data_without_trait")
    if spec.max_dataset_size is not None and len(rows) > spec.max_dataset_size:
        rng = np.random.Generator(np.random.PCG64(spec.seed))
        keep = sorted(int(i) for i in rng.choice(len(rows), size=spec.max_dataset_size, replace=False))
        rows = [rows[i] for i in keep]
    return rows


def _peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _save_final(model: Any, tokenizer: Any, out_dir: Path) -> None:
    try:
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DiskFull("the disk filled while saving the adapter", hint="free space and run the job again") from exc
        raise


def run_finetune(
    spec: FinetuneSpec,
    out_dir: Path,
    hooks: RunHooks,
    *,
    device: str | None = None,
    data_paths: tuple[Path, Path | None] | None = None,
) -> dict[str, Any]:
    """Fine-tune a LoRA adapter per ``spec``; writes the adapter and reports into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows = load_training_rows(spec, data_paths)
    backend = choose_backend(spec.backend)
    dev = pick_device(device)
    try:
        model, tokenizer, loaded = build_lora_model(spec, backend, dev)
        dev = loaded.device
        data = tokenize_rows(rows, tokenizer, spec.max_seq_length)
        if not data.examples:
            raise InvalidData("the training data holds no row with a completion token left after truncation")
        if data.truncated:
            hooks.event("truncated", f"{data.truncated} rows were truncated to {spec.max_seq_length} tokens")
        plan = BatchPlan(
            [len(e.input_ids) for e in data.examples], spec.batch_size, spec.seed, group_by_length=spec.group_by_length
        )
        accum = spec.gradient_accumulation_steps
        total_steps = spec.max_steps if spec.max_steps > 0 else math.ceil(plan.per_epoch * spec.num_epochs / accum)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            params, lr=spec.learning_rate, weight_decay=spec.weight_decay, fused=dev.type == "cuda"
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_multiplier(spec.lr_scheduler, s, total_steps, spec.warmup_steps)
        )
        prepare_model(model, compile=spec.compile == "on" or (spec.compile == "auto" and dev.type == "cuda"))
        liminal = spec.method == "liminal"
        tau = spec.resolved_tau
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        ckpt_root = out_dir / "checkpoints"
        start_step = 0
        latest = latest_checkpoint(ckpt_root)
        if latest is not None:
            start_step = int(load_checkpoint(latest, model, optimizer, scheduler)["step"])
            truncate_metrics(out_dir, start_step)
            hooks.event("resumed", f"resumed from the checkpoint of step {start_step}", {"step": start_step})
        elif (out_dir / METRICS_FILE).exists():
            (out_dir / METRICS_FILE).unlink()
        write_json(out_dir / "spec.json", spec.model_dump(mode="json"))
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        hooks.event(
            "training_started",
            f"{spec.method} fine-tune: {len(data.examples)} rows, {total_steps} steps on {dev.type} ({backend})",
            {"rows": len(data.examples), "total_steps": total_steps, "backend": backend, "start_step": start_step},
        )
        loop_started = time.perf_counter()
        tokens_total = 0
        with (out_dir / METRICS_FILE).open("a") as metrics_file:
            for step in range(start_step, total_steps):
                hooks.check_cancel()
                step_started = time.perf_counter()
                lam = (
                    kl_weight(spec.kl_schedule, step, total_steps, lambda_0=spec.lambda_0, tau=tau) if liminal else 0.0
                )
                lr = scheduler.get_last_lr()[0]
                model.train()
                ce_sum = kl_sum = loss_sum = 0.0
                tokens = 0
                for a in range(accum):
                    index = step * accum + a
                    batch = collate([data.examples[i] for i in plan.micro_batch(index)], pad_id)
                    tokens += int(batch["attention_mask"].sum())
                    batch = {k: v.to(dev) for k, v in batch.items()}
                    out = compute_loss(
                        model,
                        batch,
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
                max_norm = spec.max_grad_norm if spec.max_grad_norm > 0 else float("inf")
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                tokens_total += tokens
                elapsed = time.perf_counter() - step_started
                epoch = (step + 1) * accum / plan.per_epoch
                row: dict[str, Any] = {
                    "step": step + 1,
                    "epoch": epoch,
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
                metrics_file.write(json.dumps(row) + "\n")
                metrics_file.flush()
                hooks.metrics(row)
                hooks.progress(step + 1, total_steps, epoch=epoch, stage="training")
                done = step + 1
                if spec.checkpoint_every and done % spec.checkpoint_every == 0 and done < total_steps:
                    path = save_checkpoint(ckpt_root, done, model, optimizer, scheduler, {"micro_batch": done * accum})
                    hooks.checkpoint_saved(done, path)
        loop_seconds = time.perf_counter() - loop_started
        _save_final(model, tokenizer, out_dir)
    except torch.cuda.OutOfMemoryError as exc:
        raise OutOfMemory(f"the GPU ran out of memory: {str(exc).splitlines()[0]}", hint=OOM_HINT) from exc

    metrics = read_metrics(out_dir)
    if metrics:
        plot_loss_curve(metrics, out_dir / "loss_curve.png")
    steps_run = total_steps - start_step
    summary: dict[str, Any] = {
        "method": spec.method,
        "steps": total_steps,
        "steps_this_run": steps_run,
        "resumed_from_step": start_step,
        "rows": len(data.examples),
        "truncated_rows": data.truncated,
        "dropped_rows": data.dropped,
        "final_loss": metrics[-1]["loss"] if metrics else None,
        "final_ce": metrics[-1]["ce"] if metrics else None,
        "final_kl": metrics[-1]["kl"] if metrics else None,
        "mean_loss": float(np.mean([m["loss"] for m in metrics])) if metrics else None,
        "mean_ce": float(np.mean([m["ce"] for m in metrics])) if metrics else None,
        "mean_kl": float(np.mean([m["kl"] for m in metrics])) if metrics else None,
        "tokens": tokens_total,
        "seconds": time.perf_counter() - started,
        "train_seconds": loop_seconds,
        "tokens_per_s": tokens_total / loop_seconds if loop_seconds > 0 else 0.0,
        "steps_per_s": steps_run / loop_seconds if loop_seconds > 0 else 0.0,
        "peak_memory_bytes": _peak_memory(dev),
        "device": str(dev),
        "backend": backend,
    }
    write_json(out_dir / "summary.json", summary)
    return summary
