from __future__ import annotations

from typing import Any

from api.persistence.db import session_factory
from api.persistence.models import Job, JobEvent


def make_job(job_type: str = "generate", spec: dict[str, Any] | None = None, *, max_attempts: int = 3) -> str:
    """A queued job row, as the API would have committed it."""
    from api.storage import new_id

    job_id = new_id("job")
    with session_factory()() as s:
        s.add(Job(id=job_id, owner="anonymous", type=job_type, status="queued", spec=spec or {}, meta={},
                  progress={}, attempt=0, max_attempts=max_attempts, cancel_requested=False))  # fmt: skip
        s.commit()
    return job_id


def load_job(job_id: str) -> Job:
    with session_factory()() as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def events_of(job_id: str, kind: str | None = None) -> list[JobEvent]:
    from sqlalchemy import select

    with session_factory()() as s:
        query = select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
        if kind is not None:
            query = query.where(JobEvent.kind == kind)
        return list(s.scalars(query))
