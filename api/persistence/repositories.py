"""Queries: owner-scoped look-ups and cursor pagination (newest first for jobs, oldest first for events)."""

from __future__ import annotations

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from api.persistence.models import Artifact, File, Job, JobEvent


def get_job(session: Session, owner: str, job_id: str) -> Job | None:
    return session.scalar(select(Job).where(Job.id == job_id, Job.owner == owner))


def get_file(session: Session, owner: str, file_id: str) -> File | None:
    return session.scalar(select(File).where(File.id == file_id, File.owner == owner))


def find_idempotent(session: Session, owner: str, key: str) -> Job | None:
    return session.scalar(select(Job).where(Job.owner == owner, Job.idempotency_key == key))


def list_jobs(
    session: Session, owner: str, *, after: str | None, limit: int, type_: str | None, status: str | None
) -> tuple[list[Job], bool]:
    """A page of the owner's jobs, newest first (ties on ``created_at`` broken by id), after the job ``after``;
    returns (jobs, has_more). The cursor is a key, not an offset: jobs created while a client pages land before
    it, so no page repeats or skips a job. The row comparison ``(created_at, id) < cursor`` lets Postgres start
    the index scan at the cursor instead of filtering every newer row."""
    query = select(Job).where(Job.owner == owner)
    if type_:
        query = query.where(Job.type == type_)
    if status:
        query = query.where(Job.status == status)
    if after:
        cursor = get_job(session, owner, after)
        if cursor is None:
            return [], False
        query = query.where(tuple_(Job.created_at, Job.id) < tuple_(cursor.created_at, cursor.id))
    rows = list(session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def list_events(session: Session, job_id: str, *, after: int | None, limit: int) -> tuple[list[JobEvent], bool]:
    query = select(JobEvent).where(JobEvent.job_id == job_id)
    if after is not None:
        query = query.where(JobEvent.id > after)
    rows = list(session.scalars(query.order_by(JobEvent.id).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def list_artifacts(session: Session, job_id: str) -> list[Artifact]:
    return list(session.scalars(select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.name)))


def get_artifact(session: Session, job_id: str, name: str) -> Artifact | None:
    return session.scalar(select(Artifact).where(Artifact.job_id == job_id, Artifact.name == name))
