"""The reaper against real Postgres and Redis: a job whose publish was lost is re-sent once, a job whose message
waits in the broker is left alone, and a dead worker's job is requeued and re-sent."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from sqlalchemy import update

from api.persistence import job_state
from api.persistence.db import session_scope
from api.persistence.models import Job, utcnow
from api.queue import QUEUE, enqueue_job, job_ids_in_broker
from api.settings import get_settings
from tests.worker.helpers import load_job, make_job
from worker.reaper import reap_once


@pytest.fixture
def broker(settings_env):
    """The tests' Redis database with an empty job queue; a tiny resend_after_s so every pass looks."""
    settings_env.setenv("LIMINAL_RESEND_AFTER_S", "0.001")
    get_settings.cache_clear()
    client = redis.Redis.from_url(get_settings().broker_url)
    client.delete(QUEUE)
    yield client
    client.delete(QUEUE)


def test_a_lost_publish_is_resent_once(broker):
    job_id = make_job()  # committed, but its message never reached the broker
    assert load_job(job_id).enqueued_at is None
    assert reap_once()["resend"] == [job_id]
    assert job_ids_in_broker(get_settings()) == {job_id}
    assert load_job(job_id).enqueued_at is not None
    assert reap_once()["resend"] == []  # its message now waits in the broker
    assert broker.llen(QUEUE) == 1


def test_a_failed_publish_leaves_the_job_queued_for_the_reaper(broker, settings_env):
    settings_env.setenv("LIMINAL_BROKER_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    get_settings.cache_clear()
    job_id = make_job()
    assert enqueue_job(job_id) is False
    job = load_job(job_id)
    assert job.status == "queued" and job.enqueued_at is None


def test_a_dead_workers_job_is_requeued_and_resent(broker):
    job_id = make_job()
    with session_scope() as s:
        assert job_state.claim(s, job_id) == 1
        s.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(hours=1)))
    acted = reap_once()
    assert acted["requeued"] == [job_id] and acted["resend"] == [job_id]
    assert load_job(job_id).status == "queued"
    assert job_ids_in_broker(get_settings()) == {job_id}
