"""The one task: claim the job, run its liminal_core entry point, record artifacts and the outcome."""

from __future__ import annotations

import logging
import os
import time
import traceback
from pathlib import Path
from typing import Any

from api.persistence import job_state
from api.persistence.db import session_scope
from api.persistence.models import File, Job
from api.settings import Settings, get_settings
from api.storage import file_path, job_dir, record_artifacts
from liminal_core.errors import InvalidData
from liminal_core.hooks import RunHooks
from worker.celery_app import app
from worker.failures import outcome_of
from worker.hooks import DbHooks

log = logging.getLogger(__name__)

FINISH_RETRY_WAITS_S = (1.0, 3.0, 10.0)


def _dataset_path(settings: Settings, field: str, ref: str) -> Path:
    """A file id's stored upload, or a generate job's filtered output."""
    if ref.startswith("file-"):
        with session_scope() as session:
            row = session.get(File, ref)
            stored = file_path(settings, row.storage_path) if row is not None else None
        if stored is None or not stored.is_file():
            raise InvalidData(f"{field}: file '{ref}' is no longer stored", hint="upload it again and resubmit")
        return stored
    path = job_dir(settings, ref) / "filtered.jsonl"
    if not path.is_file():
        raise InvalidData(f"{field}: generate job '{ref}' has no filtered.jsonl", hint="name a succeeded generate job")
    return path


def _adapter_dir(settings: Settings, label: str, ref: str) -> Path:
    """A finetune job's directory, which holds its PEFT adapter at the top level."""
    path = job_dir(settings, ref)
    if not (path / "adapter_config.json").is_file():
        raise InvalidData(
            f"targets[{label}].adapter: finetune job '{ref}' has no adapter", hint="name a succeeded finetune job"
        )
    return path


def execute(
    job_type: str, spec_data: dict[str, Any], out_dir: Path, hooks: RunHooks, settings: Settings
) -> dict[str, Any]:
    """Run one job's science in this process."""
    if settings.model_cache_dir:
        os.environ["LIMINAL_CACHE_DIR"] = str(settings.model_cache_dir)
    if job_type == "generate":
        from liminal_core.generation import run_generate
        from liminal_core.specs import GenerateSpec

        return run_generate(GenerateSpec.model_validate(spec_data), out_dir, hooks)
    if job_type == "finetune":
        from liminal_core.specs import FinetuneSpec
        from liminal_core.training.engine import run_finetune

        spec = FinetuneSpec.model_validate(spec_data)
        without = spec.train_data_without_trait
        paths = (
            _dataset_path(settings, "train_data_with_trait", spec.train_data_with_trait),
            _dataset_path(settings, "train_data_without_trait", without) if without else None,
        )
        return run_finetune(spec, out_dir, hooks, data_paths=paths)
    if job_type == "evaluate":
        from liminal_core.evaluation.runner import run_evaluate
        from liminal_core.specs import EvaluateSpec

        espec = EvaluateSpec.model_validate(spec_data)
        adapters = {t.label: _adapter_dir(settings, t.label, t.adapter) for t in espec.targets if t.adapter}
        return run_evaluate(espec, out_dir, hooks, adapter_paths=adapters)
    raise ValueError(f"unknown job type {job_type!r}")


def run_claimed(job_id: str, attempt: int, settings: Settings) -> str:
    """Run a job this process has claimed, and record how it ended; returns the final status ("stale" when
    another attempt took the job over meanwhile, in which case nothing is written)."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None:
            return "stale"
        job_type, spec_data = job.type, dict(job.spec)
    hooks = DbHooks(job_id, attempt, settings)
    hooks.start()
    try:
        result: dict[str, Any] | None = None
        error: dict[str, Any] | None = None
        try:
            result = execute(job_type, spec_data, job_dir(settings, job_id), hooks, settings)
            status = "succeeded"
        except Exception as exc:
            status, error = outcome_of(exc, job_type)
            if error is not None and error["code"] == "internal":
                log.error("job %s failed:\n%s", job_id, traceback.format_exc())
        hooks.flush()
        if hooks.lost:
            log.warning("job %s: attempt %d no longer holds the job; its outcome is dropped", job_id, attempt)
            return "stale"
        return _record_outcome(job_id, attempt, settings, job_type, status, result, error)
    finally:
        hooks.stop()


def _record_outcome(
    job_id: str,
    attempt: int,
    settings: Settings,
    job_type: str,
    status: str,
    result: dict[str, Any] | None,
    error: dict[str, Any] | None,
) -> str:
    """Record the job directory's files as artifacts (partial unless it succeeded), then the terminal status.
    The heartbeat still runs meanwhile, so a slow hash of large outputs does not look like a dead worker."""
    try:
        with session_scope() as session:
            if not job_state.holds(session, job_id, attempt):
                return "stale"
            record_artifacts(session, settings, job_id, partial=status != "succeeded")
    except Exception as exc:
        log.error("job %s: recording artifacts failed:\n%s", job_id, traceback.format_exc())
        status, error = outcome_of(exc, job_type)
        result = None
    for wait_s in FINISH_RETRY_WAITS_S:
        try:
            with session_scope() as session:
                if status != "succeeded":
                    message = "outputs so far kept as partial artifacts"
                    job_state.add_event(session, job_id, "lifecycle", message, attempt=attempt)
                done = job_state.finish(session, job_id, attempt, status, result=result, error=error)
            return status if done else "stale"
        except Exception as exc:  # the database is away: try again, then leave the job to the reaper
            log.warning("job %s: could not record %s (%s); retrying in %.0f s", job_id, status, exc, wait_s)
            time.sleep(wait_s)
    raise RuntimeError(f"job {job_id}: the outcome {status} could not be recorded; the reaper will requeue it")


@app.task(name="liminal.run_job", acks_late=True)
def run_job(job_id: str) -> str:
    """Claim the job (a second delivery finds nothing to claim) and run it."""
    settings = get_settings()
    with session_scope() as session:
        attempt = job_state.claim(session, job_id)
    if attempt is None:
        log.info("job %s: nothing to claim (already taken, finished or cancelled)", job_id)
        return "not claimed"
    return run_claimed(job_id, attempt, settings)
