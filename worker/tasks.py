"""The one task: claim the job, run its liminal_core entry point, record artifacts and the outcome."""

from __future__ import annotations

import logging
import os
import traceback
from pathlib import Path
from typing import Any

from api.persistence import job_state
from api.persistence.db import session_scope
from api.persistence.models import File, Job
from api.settings import Settings, get_settings
from api.storage import file_path, job_dir, record_artifacts
from liminal_core.errors import InvalidData, JobCancelled, LiminalError
from liminal_core.hooks import RunHooks
from worker.celery_app import app
from worker.hooks import DbHooks

log = logging.getLogger(__name__)


def _dataset_path(settings: Settings, ref: str) -> Path:
    """A file id's stored upload, or a generate job's filtered output."""
    with session_scope() as session:
        if ref.startswith("file-"):
            row = session.get(File, ref)
            if row is None:
                raise InvalidData(f"file '{ref}' no longer exists")
            return file_path(settings, row.storage_path)
    return job_dir(settings, ref) / "filtered.jsonl"


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
            _dataset_path(settings, spec.train_data_with_trait),
            _dataset_path(settings, without) if without else None,
        )
        return run_finetune(spec, out_dir, hooks, data_paths=paths)
    if job_type == "evaluate":
        from liminal_core.evaluation.runner import run_evaluate
        from liminal_core.specs import EvaluateSpec

        espec = EvaluateSpec.model_validate(spec_data)
        adapters = {t.label: job_dir(settings, t.adapter) for t in espec.targets if t.adapter}
        return run_evaluate(espec, out_dir, hooks, adapter_paths=adapters)
    raise ValueError(f"unknown job type {job_type!r}")


def run_claimed(job_id: str, attempt: int, settings: Settings) -> str:
    """Run a job this process has claimed, and record how it ended."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        job_type, spec_data = job.type, dict(job.spec)
    hooks = DbHooks(job_id, attempt, settings)
    hooks.start()
    out_dir = job_dir(settings, job_id)
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    try:
        result = execute(job_type, spec_data, out_dir, hooks, settings)
        status = "succeeded"
    except JobCancelled:
        status = "cancelled"
    except LiminalError as exc:
        status, error = "failed", {"code": exc.code, "message": exc.message, "hint": exc.hint}
    except Exception as exc:
        log.error("job %s failed:\n%s", job_id, traceback.format_exc())
        status, error = "failed", {"code": "internal", "message": f"{type(exc).__name__}: {exc}", "hint": None}
    finally:
        hooks.stop()
    with session_scope() as session:
        record_artifacts(session, settings, job_id, partial=status != "succeeded")
        if status == "cancelled":
            job_state.add_event(
                session, job_id, "lifecycle", "partial artifacts kept and marked partial", attempt=attempt
            )
        job_state.finish(session, job_id, attempt, status, result=result, error=error)
    return status


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
