"""Guarded job-state changes against real Postgres: one claim per job, stale attempts change nothing,
terminal states stay, the reaper requeues or fails by attempts."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import update

from api.persistence import job_state
from api.persistence.db import session_factory
from api.persistence.models import Job, utcnow


def make_job(max_attempts: int = 2) -> str:
    from api.storage import new_id

    job_id = new_id("job")
    with session_factory()() as s:
        s.add(Job(id=job_id, owner="anonymous", type="generate", status="queued", spec={}, meta={}, progress={},
                  attempt=0, max_attempts=max_attempts, cancel_requested=False))  # fmt: skip
        s.commit()
    return job_id


def status_of(job_id: str) -> tuple[str, int]:
    with session_factory()() as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job.status, job.attempt


def test_the_same_message_delivered_twice_at_once_gives_one_claim(settings_env):
    job_id = make_job()
    barrier = threading.Barrier(8)
    results: list[int | None] = []

    def deliver() -> None:
        with session_factory()() as s:
            barrier.wait()
            results.append(job_state.claim(s, job_id))

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r for r in results if r is not None) == [1]
    assert results.count(None) == 7
    assert status_of(job_id) == ("running", 1)


def test_a_stale_attempt_changes_nothing_and_terminal_states_stay(settings_env):
    job_id = make_job(max_attempts=3)
    with session_factory()() as s:
        assert job_state.claim(s, job_id) == 1
        s.execute(update(Job).where(Job.id == job_id).values(status="queued"))  # the reaper requeued it
        s.commit()
        assert job_state.claim(s, job_id) == 2
        assert not job_state.set_progress(s, job_id, 1, {"step": 99})
        assert not job_state.finish(s, job_id, 1, "failed", error={"code": "x", "message": "stale"})
        assert job_state.finish(s, job_id, 2, "succeeded", result={"ok": True})
        assert not job_state.finish(s, job_id, 2, "failed", error={"code": "x", "message": "late"})
        assert job_state.request_cancel(s, job_id) == "succeeded"
    assert status_of(job_id) == ("succeeded", 2)


def test_reaper_requeues_a_silent_job_then_fails_it_past_max_attempts(settings_env):
    job_id = make_job(max_attempts=2)
    long_ago = utcnow() - timedelta(minutes=10)
    with session_factory()() as s:
        for expected_attempt in (1, 2):
            assert job_state.claim(s, job_id) == expected_attempt
            s.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=long_ago))
            s.commit()
            acted = job_state.reap(s, heartbeat_timeout_s=60, resend_after_s=60)
            if expected_attempt == 1:
                assert acted["requeued"] == [job_id] and job_id in acted["resend"]
            else:
                assert acted["failed"] == [job_id]
        job = s.get(Job, job_id)
        assert job is not None and job.status == "failed" and job.error is not None
        assert job.error["code"] == "worker_lost"
        assert job_state.claim(s, job_id) is None


def test_reaper_ends_an_abandoned_cancel_and_leaves_live_jobs_alone(settings_env):
    silent, live = make_job(), make_job()
    with session_factory()() as s:
        for job_id in (silent, live):
            job_state.claim(s, job_id)
            job_state.request_cancel(s, job_id)
        s.execute(update(Job).where(Job.id == silent).values(heartbeat_at=utcnow() - timedelta(minutes=5)))
        s.commit()
        acted = job_state.reap(s, heartbeat_timeout_s=60, resend_after_s=60)
    assert acted["cancelled"] == [silent]
    assert status_of(silent)[0] == "cancelled" and status_of(live)[0] == "cancelling"
