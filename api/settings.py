"""All server settings: one pydantic-settings class, read from the environment (prefix ``LIMINAL_``) or a
``.env`` file. ``get_settings()`` is cached; nothing reads settings at import time."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every field can be set as ``LIMINAL_<NAME>`` (e.g. ``LIMINAL_DATABASE_URL``)."""

    model_config = SettingsConfigDict(env_prefix="LIMINAL_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="sqlite:///var/liminal.db",
        description="SQLAlchemy URL; postgresql+psycopg://user@host/db in production",
    )
    broker_url: str = Field(
        default="", description="Celery broker (redis://host:6379/0); empty = the embedded Redis of `liminal serve`"
    )
    var_dir: Path = Field(default=Path("var"), description="where the embedded default keeps its state")
    artifact_root: Path = Field(default=Path("var/artifacts"), description="uploaded files and job outputs")
    require_api_keys: bool = Field(default=False, description="every route but the health checks needs a key")
    max_upload_bytes: int = Field(default=256 * 2**20, ge=1, description="largest accepted upload")
    orphan_grace_s: float = Field(
        default=600.0, ge=0, description="age after which an upload file without a row is removed at API start"
    )
    max_body_bytes: int = Field(default=2**20, ge=1024, description="largest accepted JSON body")
    max_json_depth: int = Field(default=32, ge=2, description="deepest accepted JSON nesting")
    max_attempts: int = Field(default=3, ge=1, le=100, description="runs of a job before it fails worker_lost")
    heartbeat_interval_s: float = Field(default=5.0, gt=0, description="how often a running job proves it lives")
    heartbeat_timeout_s: float = Field(default=60.0, gt=0, description="silence after which a job is requeued")
    reaper_interval_s: float = Field(default=15.0, gt=0, description="how often the reaper looks")
    resend_after_s: float = Field(default=60.0, gt=0, description="queued this long: its message is re-sent")
    visibility_timeout_s: int = Field(default=7 * 24 * 3600, ge=60, description="Redis redelivery timeout")
    progress_interval_s: float = Field(default=2.0, ge=0, description="least time between progress writes")
    cancel_poll_s: float = Field(default=1.0, ge=0, description="how stale a cancel check may be")
    model_cache_dir: Path | None = Field(default=None, description="LIMINAL_CACHE_DIR for converted models")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings (cached; tests clear the cache after changing the environment)."""
    return Settings()
