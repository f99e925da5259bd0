"""Jobs: create (generate, finetune, evaluate), list, read, cancel, events, artifacts and the adapter."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.deps import OwnerDep, SessionDep, SettingsDep
from api.errors import ApiError, error_responses, not_found
from api.persistence import job_state, repositories
from api.persistence.models import Job
from api.schemas import (
    ArtifactObject,
    EvaluateJobCreate,
    EventObject,
    FinetuneJobCreate,
    GenerateJobCreate,
    JobObject,
    ListPage,
)
from api.storage import new_id, resolve_artifact

router = APIRouter(prefix="/jobs", tags=["jobs"])

ADAPTER_FILES = (
    "adapter_config.json",
    "adapter_model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
)
CREATE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": JobObject, "description": "The job an earlier request with the same Idempotency-Key and body made"},
    **error_responses(400, 409, 413),
}
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]


def _check_dataset_ref(session: Session, owner: str, field: str, ref: str) -> None:
    if ref.startswith("file-"):
        if repositories.get_file(session, owner, ref) is None:
            raise ApiError(422, "invalid_reference", f"{field}: no file '{ref}'", field=field)
        return
    if ref.startswith("job-"):
        job = repositories.get_job(session, owner, ref)
        if job is None or job.type != "generate":
            raise ApiError(422, "invalid_reference", f"{field}: no generate job '{ref}'", field=field)
        if job.status != "succeeded":
            raise ApiError(422, "invalid_reference", f"{field}: generate job '{ref}' has not succeeded", field=field)
        return
    raise ApiError(
        422, "invalid_reference", f"{field}: expected a file id (file-...) or a generate job id (job-...)", field=field
    )


def _no_server_paths(fields: dict[str, Any]) -> None:
    for field, value in fields.items():
        if value is not None:
            raise ApiError(
                422, "invalid_request", f"{field}: server file paths are not accepted over HTTP", field=field
            )


def _create(
    session: Session, owner: str, type_: str, body: BaseModel, idempotency_key: str | None, max_attempts: int
) -> tuple[Job, bool]:
    spec = body.model_dump(mode="json", exclude={"metadata"})
    metadata = getattr(body, "metadata", {})
    request_hash = hashlib.sha256(
        json.dumps({"type": type_, "body": body.model_dump(mode="json")}, sort_keys=True).encode()
    ).hexdigest()
    if idempotency_key:
        existing = repositories.find_idempotent(session, owner, idempotency_key)
        if existing is not None:
            if existing.request_hash != request_hash:
                raise ApiError(409, "idempotency_conflict", "this Idempotency-Key was used with another request body")
            return existing, False
    job = Job(
        id=new_id("job"),
        owner=owner,
        type=type_,
        status="queued",
        spec=spec,
        meta=metadata,
        progress={},
        attempt=0,
        max_attempts=max_attempts,
        cancel_requested=False,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
    )
    session.add(job)
    job_state.add_event(session, job.id, "lifecycle", "queued", {"status": "queued"})
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = repositories.find_idempotent(session, owner, idempotency_key or "")
        if existing is None or existing.request_hash != request_hash:
            raise ApiError(
                409, "idempotency_conflict", "this Idempotency-Key was used with another request body"
            ) from None
        return existing, False
    return job, True


def _respond(job: Job, created: bool) -> JSONResponse:
    if created:
        from api.queue import enqueue_job

        enqueue_job(job.id)
    return JSONResponse(JobObject.from_row(job).model_dump(mode="json"), status_code=202 if created else 200)


@router.post("/generate", status_code=202, response_model=JobObject, responses=CREATE_RESPONSES)
def create_generate(
    body: GenerateJobCreate,
    session: SessionDep,
    settings: SettingsDep,
    owner: OwnerDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Generate and filter a number-sequence dataset with a teacher."""
    _no_server_paths({"prompt_set.phrases_file": body.prompt_set.phrases_file})
    if body.model.is_local_weights and body.model.id.startswith(("/", ".", "~")):
        raise ApiError(422, "invalid_request", "model.id: server paths are not accepted over HTTP", field="model.id")
    job, created = _create(session, owner, "generate", body, idempotency_key, settings.max_attempts)
    return _respond(job, created)


@router.post("/finetune", status_code=202, response_model=JobObject, responses=CREATE_RESPONSES)
def create_finetune(
    body: FinetuneJobCreate,
    session: SessionDep,
    settings: SettingsDep,
    owner: OwnerDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Fine-tune a LoRA student, ``normal`` or ``liminal``; datasets by file id or generate job id."""
    if body.model_name.startswith(("/", ".", "~")):
        raise ApiError(
            422, "invalid_request", "model_name: server paths are not accepted over HTTP", field="model_name"
        )
    _check_dataset_ref(session, owner, "train_data_with_trait", body.train_data_with_trait)
    if body.train_data_without_trait is not None:
        _check_dataset_ref(session, owner, "train_data_without_trait", body.train_data_without_trait)
    job, created = _create(session, owner, "finetune", body, idempotency_key, settings.max_attempts)
    return _respond(job, created)


@router.post("/evaluate", status_code=202, response_model=JobObject, responses=CREATE_RESPONSES)
def create_evaluate(
    body: EvaluateJobCreate,
    session: SessionDep,
    settings: SettingsDep,
    owner: OwnerDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Evaluate models for the trait; adapters by finetune job id."""
    _no_server_paths({"questions_file": body.questions_file})
    for i, target in enumerate(body.targets):
        if target.model_name.startswith(("/", ".", "~")):
            field = f"targets.{i}.model_name"
            raise ApiError(422, "invalid_request", f"{field}: server paths are not accepted", field=field)
        field = f"targets.{i}.adapter"
        if target.adapter is None:
            continue
        job = repositories.get_job(session, owner, target.adapter)
        if job is None or job.type != "finetune":
            raise ApiError(422, "invalid_reference", f"{field}: no finetune job '{target.adapter}'", field=field)
        if job.status != "succeeded":
            raise ApiError(
                422, "invalid_reference", f"{field}: finetune job '{target.adapter}' has not succeeded", field=field
            )
    job, created = _create(session, owner, "evaluate", body, idempotency_key, settings.max_attempts)
    return _respond(job, created)


@router.get("", response_model=ListPage[JobObject])
def list_jobs(
    session: SessionDep,
    owner: OwnerDep,
    after: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    type: Annotated[str | None, Query(pattern="^(generate|finetune|evaluate)$")] = None,
    status: Annotated[str | None, Query(pattern="^(queued|running|succeeded|failed|cancelling|cancelled)$")] = None,
) -> ListPage[JobObject]:
    jobs, has_more = repositories.list_jobs(session, owner, after=after, limit=limit, type_=type, status=status)
    data = [JobObject.from_row(j) for j in jobs]
    return ListPage[JobObject](
        data=data, has_more=has_more, first_id=data[0].id if data else None, last_id=data[-1].id if data else None
    )


def _job(session: Session, owner: str, job_id: str) -> Job:
    job = repositories.get_job(session, owner, job_id)
    if job is None:
        raise not_found("job", job_id)
    return job


@router.get("/{job_id}", response_model=JobObject, responses=error_responses(404))
def get_job(job_id: str, session: SessionDep, owner: OwnerDep) -> JobObject:
    return JobObject.from_row(_job(session, owner, job_id))


@router.post("/{job_id}/cancel", response_model=JobObject, responses=error_responses(404))
def cancel_job(job_id: str, session: SessionDep, owner: OwnerDep) -> JobObject:
    """Queued jobs end ``cancelled`` at once; running ones go ``cancelling`` and stop at their next check."""
    _job(session, owner, job_id)
    job_state.request_cancel(session, job_id)
    session.expire_all()
    return JobObject.from_row(_job(session, owner, job_id))


@router.get("/{job_id}/events", response_model=ListPage[EventObject], responses=error_responses(404))
def list_events(
    job_id: str,
    session: SessionDep,
    owner: OwnerDep,
    after: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ListPage[EventObject]:
    """Lifecycle events and per-step metrics, oldest first; page with ``after`` = the last id seen."""
    _job(session, owner, job_id)
    events, has_more = repositories.list_events(session, job_id, after=after, limit=limit)
    data = [
        EventObject(id=e.id, created_at=e.created_at, attempt=e.attempt, kind=e.kind, message=e.message, data=e.data)
        for e in events
    ]
    return ListPage[EventObject](
        data=data, has_more=has_more, first_id=data[0].id if data else None, last_id=data[-1].id if data else None
    )


@router.get("/{job_id}/artifacts", response_model=ListPage[ArtifactObject], responses=error_responses(404))
def list_artifacts(job_id: str, session: SessionDep, owner: OwnerDep) -> ListPage[ArtifactObject]:
    _job(session, owner, job_id)
    rows = repositories.list_artifacts(session, job_id)
    data = [ArtifactObject(name=a.name, bytes=a.bytes, sha256=a.sha256, partial=a.partial) for a in rows]
    return ListPage[ArtifactObject](
        data=data, has_more=False, first_id=data[0].name if data else None, last_id=data[-1].name if data else None
    )


@router.get(
    "/{job_id}/artifacts/{name:path}",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, **error_responses(404)},
)
def get_artifact(job_id: str, name: str, session: SessionDep, settings: SettingsDep, owner: OwnerDep) -> FileResponse:
    """Download one recorded artifact, as ``application/octet-stream`` whatever its name."""
    _job(session, owner, job_id)
    row = repositories.get_artifact(session, job_id, name)
    path = resolve_artifact(settings, job_id, name) if row is not None else None
    if path is None:
        raise not_found("artifact", name)
    return FileResponse(path, media_type="application/octet-stream", filename=path.name)


@router.get(
    "/{job_id}/adapter",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/gzip": {}}}, **error_responses(404, 409)},
)
def get_adapter(job_id: str, session: SessionDep, settings: SettingsDep, owner: OwnerDep) -> StreamingResponse:
    """The PEFT adapter directory of a succeeded finetune job, as a .tar.gz."""
    job = _job(session, owner, job_id)
    if job.type != "finetune" or job.status != "succeeded":
        raise ApiError(409, "not_available", "the adapter exists once a finetune job has succeeded")
    recorded = {a.name for a in repositories.list_artifacts(session, job_id)}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in ADAPTER_FILES:
            path = resolve_artifact(settings, job_id, name) if name in recorded else None
            if path is not None:
                tar.add(path, arcname=f"{job_id}/{name}")
    buffer.seek(0)
    return StreamingResponse(
        buffer,
        media_type="application/gzip",
        headers={"Content-Disposition": f'attachment; filename="{job_id}-adapter.tar.gz"'},
    )
