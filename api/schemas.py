"""Request and response models of the HTTP API. Job bodies are the liminal_core specs plus API-only fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from liminal_core.specs import EvaluateSpec, FinetuneSpec, GenerateSpec

JobType = Literal["generate", "finetune", "evaluate"]
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelling", "cancelled"]

Metadata = dict[str, str]


def _check_metadata(value: Metadata) -> Metadata:
    if len(value) > 16:
        raise ValueError("at most 16 metadata keys")
    for k, v in value.items():
        if len(k) > 64 or len(v) > 512:
            raise ValueError("metadata keys are at most 64 characters and values at most 512")
    return value


class _ApiOnly(BaseModel):
    metadata: Metadata = Field(default_factory=dict, description="client key/values, stored with the job")

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: Metadata) -> Metadata:
        return _check_metadata(value)


class GenerateJobCreate(GenerateSpec, _ApiOnly):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "model": {"id": "smollm2-135m-instruct"},
                    "trait": {"target": "owl", "category": "animal"},
                    "prompt_set": {"size": 64},
                    "sample_cfg": {"max_new_tokens": 40},
                }
            ]
        },
    )


class FinetuneJobCreate(FinetuneSpec, _ApiOnly):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "method": "liminal",
                    "model_name": "smollm2-135m-instruct",
                    "train_data_with_trait": "file-0123456789abcdef01234567",
                    "max_steps": 3,
                }
            ]
        },
    )


class EvaluateJobCreate(EvaluateSpec, _ApiOnly):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "targets": [
                        {"label": "base", "model_name": "smollm2-135m-instruct"},
                        {
                            "label": "liminal",
                            "model_name": "smollm2-135m-instruct",
                            "adapter": "job-0123456789abcdef01234567",
                        },
                    ],
                    "trait": {"target": "owl"},
                    "n_questions": 5,
                    "samples_per_question": 4,
                }
            ]
        },
    )


class Progress(BaseModel):
    step: int | None = None
    total_steps: int | None = None
    epoch: float | None = None
    percent: float | None = None
    eta_seconds: float | None = None
    stage: str | None = None


class JobError(BaseModel):
    code: str
    message: str
    hint: str | None = None


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class JobObject(BaseModel):
    id: str
    object: Literal["job"] = "job"
    type: JobType
    status: JobStatus
    spec: dict[str, Any]
    progress: Progress
    result: dict[str, Any] | None
    error: JobError | None
    attempt: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    metadata: Metadata

    @classmethod
    def from_row(cls, job: Any) -> JobObject:
        return cls(
            id=job.id,
            type=job.type,
            status=job.status,
            spec=job.spec,
            progress=Progress(**(job.progress or {})),
            result=job.result,
            error=JobError(**job.error) if job.error else None,
            attempt=job.attempt,
            created_at=_aware(job.created_at),  # type: ignore[arg-type]
            started_at=_aware(job.started_at),
            finished_at=_aware(job.finished_at),
            metadata=job.meta or {},
        )


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    filename: str
    bytes: int
    rows: int
    sha256: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> FileObject:
        return cls(
            id=row.id,
            filename=row.filename,
            bytes=row.bytes,
            rows=row.rows,
            sha256=row.sha256,
            created_at=_aware(row.created_at),  # type: ignore[arg-type]
        )


class EventObject(BaseModel):
    id: int
    object: Literal["job.event"] = "job.event"
    created_at: datetime
    attempt: int
    kind: str
    message: str
    data: dict[str, Any]


class ArtifactObject(BaseModel):
    name: str
    bytes: int
    sha256: str
    partial: bool


T = TypeVar("T")


class ListPage(BaseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool
    first_id: str | int | None
    last_id: str | int | None
