"""Artifact storage under one root (a shared volume in production): uploads, job directories, artifact rows.

Downloads are served only for artifacts recorded in the database, and their paths are resolved so that they
can never leave the job's directory (no ``..``, absolute paths or symlinks out).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from api.persistence.models import Artifact, File
from api.settings import Settings
from liminal_core.jsonl import write_atomic

SKIP_DIRS = {"checkpoints"}


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def root(settings: Settings) -> Path:
    return settings.artifact_root.resolve()


def job_dir(settings: Settings, job_id: str) -> Path:
    return root(settings) / "jobs" / job_id


def file_path(settings: Settings, relative: str) -> Path:
    return root(settings) / relative


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_upload(settings: Settings, file_id: str, data: bytes) -> str:
    """Store an upload atomically (temp file, fsync, rename); returns its path relative to the root."""
    final = root(settings) / "files" / f"{file_id}.jsonl"
    write_atomic(final, data)
    return str(final.relative_to(root(settings)))


def sweep_orphan_uploads(settings: Settings, session: Session, *, grace_s: float) -> list[Path]:
    """Remove upload files that no committed row names (an API killed between writing the file and committing
    its row) and temp files of writes that never finished, once older than ``grace_s`` (so an upload another
    API process is finishing right now is left alone). Returns what was removed."""
    directory = root(settings) / "files"
    if not directory.is_dir():
        return []
    cutoff = time.time() - grace_s
    named = set(session.scalars(select(File.storage_path)))
    removed = []
    for path in directory.iterdir():
        if path.is_symlink() or not path.is_file() or path.stat().st_mtime > cutoff:
            continue
        if str(path.relative_to(root(settings))) in named:
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def record_artifacts(session: Session, settings: Settings, job_id: str, *, partial: bool = False) -> int:
    """Replace the job's artifact rows with what its directory holds now (checkpoints excluded)."""
    base = job_dir(settings, job_id)
    session.execute(delete(Artifact).where(Artifact.job_id == job_id))
    count = 0
    if base.is_dir():
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(base)
            if path.is_symlink() or not path.is_file() or rel.parts[0] in SKIP_DIRS or rel.name.startswith("."):
                continue
            session.add(
                Artifact(
                    job_id=job_id,
                    name=rel.as_posix(),
                    bytes=path.stat().st_size,
                    sha256=sha256_file(path),
                    partial=partial,
                )
            )
            count += 1
    session.commit()
    return count


def resolve_artifact(settings: Settings, job_id: str, name: str) -> Path | None:
    """The file of a recorded artifact name, or None if it would leave the job directory or is not a file."""
    base = job_dir(settings, job_id).resolve()
    if not name or name.startswith("/") or "\\" in name or any(part in ("", ".", "..") for part in name.split("/")):
        return None
    candidate = base / name
    if candidate.is_symlink():
        return None
    resolved = candidate.resolve()
    if base not in resolved.parents or not resolved.is_file():
        return None
    return resolved
