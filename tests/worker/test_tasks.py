"""The job task in this process against real Postgres: faults injected into a run end the job with the right
code and partial artifacts, the same worker then runs a real SmolLM2 job cleanly, and a second delivery or a
stale attempt changes nothing."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import torch
from sqlalchemy import select, update

import worker.tasks
from api.persistence import job_state
from api.persistence.db import session_scope
from api.persistence.models import Artifact, Job
from liminal_core.hooks import RunHooks
from liminal_core.specs import FinetuneSpec, GenerateSpec
from tests.worker.helpers import events_of, load_job, make_job
from worker.tasks import run_claimed, run_job

MODEL = "smollm2-135m-instruct"


def artifacts_of(job_id: str) -> dict[str, bool]:
    with session_scope() as s:
        return {a.name: a.partial for a in s.scalars(select(Artifact).where(Artifact.job_id == job_id))}


def failing_run(exc: BaseException):
    """A run that writes a first output, then raises ``exc``."""

    def execute(job_type: str, spec: dict[str, Any], out_dir: Path, hooks: RunHooks, settings: Any) -> dict:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "metrics.jsonl").write_text('{"step": 1}\n')
        hooks.progress(1, 4)
        raise exc

    return execute


def test_injected_oom_fails_with_a_hint_then_the_same_worker_runs_a_real_job(settings_env, monkeypatch):
    oom = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    monkeypatch.setattr(worker.tasks, "execute", failing_run(oom))
    job_id = make_job("finetune")
    assert run_job(job_id) == "failed"
    job = load_job(job_id)
    assert job.status == "failed" and job.error is not None and job.finished_at is not None
    assert job.error["code"] == "out_of_memory" and "batch_size" in job.error["hint"]
    assert artifacts_of(job_id) == {"metrics.jsonl": True}
    assert any("partial" in e.message for e in events_of(job_id, "lifecycle"))

    monkeypatch.undo()
    spec = GenerateSpec.model_validate(
        {"model": {"id": MODEL}, "prompt_set": {"size": 2}, "sample_cfg": {"max_new_tokens": 4}}
    )
    next_id = make_job("generate", spec.model_dump(mode="json"))
    assert run_job(next_id) == "succeeded"
    job = load_job(next_id)
    assert job.status == "succeeded" and job.result is not None and job.result["rows"] == 2
    assert job.progress["percent"] == 100.0
    assert artifacts_of(next_id) == {"raw.jsonl": False, "filtered.jsonl": False, "summary.json": False}


def test_a_full_disk_during_the_run_fails_disk_full(settings_env, monkeypatch):
    monkeypatch.setattr(worker.tasks, "execute", failing_run(OSError(errno.ENOSPC, "No space left on device")))
    job_id = make_job("generate")
    assert run_job(job_id) == "failed"
    error = load_job(job_id).error
    assert error is not None and error["code"] == "disk_full" and "free space" in error["hint"]


def test_a_dataset_that_vanished_fails_invalid_data_naming_the_field(settings_env):
    spec = FinetuneSpec(model_name=MODEL, train_data_with_trait="file-" + "0" * 24)
    job_id = make_job("finetune", spec.model_dump(mode="json"))
    assert run_job(job_id) == "failed"
    error = load_job(job_id).error
    assert error is not None and error["code"] == "invalid_data"
    assert error["message"].startswith("train_data_with_trait:")


def test_cancel_during_the_run_ends_cancelled(settings_env, monkeypatch):
    def execute(job_type: str, spec: dict[str, Any], out_dir: Path, hooks: RunHooks, settings: Any) -> dict:
        with session_scope() as s:
            job_state.request_cancel(s, job_id)
        hooks.check_cancel()
        raise AssertionError("the cancel check did not stop the run")

    monkeypatch.setattr(worker.tasks, "execute", execute)
    job_id = make_job("generate")
    assert run_job(job_id) == "cancelled"
    job = load_job(job_id)
    assert job.status == "cancelled" and job.error is None and job.finished_at is not None


def test_a_second_delivery_finds_nothing_to_claim(settings_env, monkeypatch):
    monkeypatch.setattr(worker.tasks, "execute", lambda *args: {"ok": True})
    job_id = make_job("generate")
    assert run_job(job_id) == "succeeded"
    assert run_job(job_id) == "not claimed"
    job = load_job(job_id)
    assert job.status == "succeeded" and job.attempt == 1 and job.result == {"ok": True}


def test_a_stale_attempt_records_neither_outcome_nor_artifacts(settings_env, monkeypatch):
    def execute(job_type: str, spec: dict[str, Any], out_dir: Path, hooks: RunHooks, settings: Any) -> dict:
        with session_scope() as s:  # meanwhile the reaper requeued the job and another worker claimed it
            s.execute(update(Job).where(Job.id == job_id).values(status="queued"))
            s.commit()
            assert job_state.claim(s, job_id) == 2
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "summary.json").write_text("{}")
        return {"ok": True}

    monkeypatch.setattr(worker.tasks, "execute", execute)
    job_id = make_job("generate")
    with session_scope() as s:
        assert job_state.claim(s, job_id) == 1
    assert run_claimed(job_id, 1, worker.tasks.get_settings()) == "stale"
    job = load_job(job_id)
    assert (job.status, job.attempt, job.result) == ("running", 2, None)
    assert artifacts_of(job_id) == {}


def test_a_queued_job_out_of_attempts_fails_worker_lost_when_delivered(settings_env):
    job_id = make_job("generate", max_attempts=1)
    with session_scope() as s:  # its one attempt was used by a worker that died; the row was put back by hand
        s.execute(update(Job).where(Job.id == job_id).values(attempt=1))
        s.commit()
    assert run_job(job_id) == "not claimed"
    job = load_job(job_id)
    assert job.status == "failed" and job.error is not None and job.error["code"] == "worker_lost"
