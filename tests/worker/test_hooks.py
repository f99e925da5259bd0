"""The worker's run hooks against real Postgres: throttled progress, batched metrics, the heartbeat thread,
the cancel check, and a stale attempt that writes nothing."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from api.persistence import job_state
from api.persistence.db import session_scope
from api.persistence.models import Job, utcnow
from api.settings import Settings, get_settings
from liminal_core.errors import JobCancelled
from tests.worker.helpers import events_of, load_job, make_job
from worker.hooks import DbHooks


def settings(**overrides: float) -> Settings:
    return get_settings().model_copy(update=overrides)


def claimed_job() -> tuple[str, int]:
    job_id = make_job()
    with session_scope() as s:
        attempt = job_state.claim(s, job_id)
    assert attempt == 1
    return job_id, attempt


def test_progress_is_throttled_and_metrics_are_batched_in_step_order(settings_env):
    job_id, attempt = claimed_job()
    hooks = DbHooks(job_id, attempt, settings(progress_interval_s=3600))
    for step in range(1, 5):
        hooks.metrics({"step": step, "loss": 1.0 / step})
        hooks.progress(step, 10, epoch=step / 10)
    assert load_job(job_id).progress["step"] == 1  # the first write goes out, then nothing for an interval
    assert [e.data["step"] for e in events_of(job_id, "metrics")] == [1]
    hooks.flush()
    progress = load_job(job_id).progress
    assert progress["step"] == 4 and progress["total_steps"] == 10 and progress["percent"] == 40.0
    assert progress["eta_seconds"] is not None and progress["eta_seconds"] >= 0
    metrics = events_of(job_id, "metrics")
    assert [e.data["step"] for e in metrics] == [1, 2, 3, 4]
    assert {e.attempt for e in metrics} == {1}
    hooks.progress(10, 10)  # the last step is always written
    assert load_job(job_id).progress["percent"] == 100.0


def test_eta_counts_from_the_step_this_attempt_started_at(settings_env):
    job_id, attempt = claimed_job()
    hooks = DbHooks(job_id, attempt, settings(progress_interval_s=0))
    hooks.progress(50, 100)  # resumed from a checkpoint at step 50
    assert load_job(job_id).progress["eta_seconds"] is None
    time.sleep(0.2)
    hooks.progress(51, 100)
    eta = load_job(job_id).progress["eta_seconds"]
    assert 49 * 0.2 <= eta < 49 * 2.0  # one step took ~0.2 s; 49 remain


def test_heartbeat_thread_keeps_the_job_alive_until_stopped(settings_env):
    job_id, attempt = claimed_job()
    with session_scope() as s:
        s.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(hours=1)))
    hooks = DbHooks(job_id, attempt, settings(heartbeat_interval_s=0.1))
    hooks.start()
    time.sleep(0.5)
    hooks.stop()
    beat = load_job(job_id).heartbeat_at
    assert beat is not None and utcnow() - beat < timedelta(seconds=5)
    assert not hooks.lost


def test_cancel_request_reaches_the_run(settings_env):
    job_id, attempt = claimed_job()
    hooks = DbHooks(job_id, attempt, settings(cancel_poll_s=0))
    hooks.check_cancel()
    with session_scope() as s:
        assert job_state.request_cancel(s, job_id) == "cancelling"
    with pytest.raises(JobCancelled):
        hooks.check_cancel()


def test_a_stale_attempt_writes_nothing_and_stops(settings_env):
    job_id, old = claimed_job()
    with session_scope() as s:  # the reaper requeued the job and another worker claimed it
        s.execute(update(Job).where(Job.id == job_id).values(status="queued"))
        s.commit()
        assert job_state.claim(s, job_id) == 2
    hooks = DbHooks(job_id, old, settings(progress_interval_s=0, cancel_poll_s=3600))
    hooks.metrics({"step": 7, "loss": 0.5})
    hooks.progress(7, 10)
    hooks.event("checkpoint", "checkpoint written at step 7")
    assert hooks.lost and hooks.should_cancel()
    job = load_job(job_id)
    assert job.attempt == 2 and job.status == "running" and job.progress == {}
    assert events_of(job_id, "metrics") == [] and events_of(job_id, "log") == []
