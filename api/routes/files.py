"""Dataset uploads (multipart field ``file``, as in the OpenAI Files API), validated line by line."""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, UploadFile
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import OwnerDep, SessionDep, SettingsDep
from api.errors import ApiError, error_responses, not_found
from api.persistence import repositories
from api.persistence.models import File
from api.schemas import FileObject
from api.settings import Settings
from api.storage import file_path, new_id, write_upload
from liminal_core.datasets import validate_jsonl_lines

router = APIRouter(prefix="/files", tags=["files"])


@router.post("", response_model=FileObject, responses=error_responses(400, 413))
async def upload_file(file: UploadFile, session: SessionDep, settings: SettingsDep, owner: OwnerDep) -> FileObject:
    """Upload a JSONL dataset of ``{"prompt", "completion"}`` rows. A bad file gets 422 with the first 100
    errors as ``{line, code, message}``; nothing is stored."""
    data = await file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise ApiError(413, "too_large", f"the file is larger than {settings.max_upload_bytes} bytes", field="file")
    return await run_in_threadpool(_store_upload, session, settings, owner, file.filename, data)


def _store_upload(session: Session, settings: Settings, owner: str, filename: str | None, data: bytes) -> FileObject:
    """Validate, write (fsynced) and record an upload. Seconds of work for a large file, so it runs in the thread
    pool: on the event loop it would hold up every other request this process is serving."""
    rows, errors = validate_jsonl_lines(data.splitlines(), max_errors=100)
    if errors:
        raise ApiError(
            422,
            "invalid_file",
            f"the file has invalid lines (first: line {errors[0].line}: {errors[0].message})",
            field="file",
            details=[{"line": e.line, "code": e.code, "message": e.message} for e in errors],
        )
    file_id = new_id("file")
    relative = write_upload(settings, file_id, data)
    row = File(
        id=file_id,
        owner=owner,
        filename=(filename or "").replace("\x00", "")[:255] or "upload.jsonl",
        bytes=len(data),
        rows=len(rows),
        sha256=hashlib.sha256(data).hexdigest(),
        storage_path=relative,
    )
    session.add(row)
    try:
        session.commit()
    except Exception:
        file_path(settings, relative).unlink(missing_ok=True)
        raise
    return FileObject.from_row(row)


@router.get("/{file_id}", response_model=FileObject, responses=error_responses(404))
def get_file(file_id: str, session: SessionDep, owner: OwnerDep) -> FileObject:
    row = repositories.get_file(session, owner, file_id)
    if row is None:
        raise not_found("file", file_id)
    return FileObject.from_row(row)


@router.get(
    "/{file_id}/content",
    response_class=FileResponse,
    responses={200: {"content": {"application/jsonl": {}}}, **error_responses(404)},
)
def get_file_content(file_id: str, session: SessionDep, settings: SettingsDep, owner: OwnerDep) -> FileResponse:
    row = repositories.get_file(session, owner, file_id)
    if row is None:
        raise not_found("file", file_id)
    return FileResponse(file_path(settings, row.storage_path), media_type="application/jsonl", filename=row.filename)
