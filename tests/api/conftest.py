"""API tests run against a real Postgres database built by the migrations (a fresh database per session)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import psycopg
import pytest

ADMIN_URL = os.environ.get("LIMINAL_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    name = f"liminal_test_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    from alembic import command
    from alembic.config import Config

    from tests.api.helpers import REPO

    config = Config(str(REPO / "alembic.ini"))
    config.set_main_option("script_location", str(REPO / "migrations"))
    config.attributes["configure_logger"] = False
    config.cmd_opts = None
    os.environ["LIMINAL_DATABASE_URL"] = url
    from api.settings import get_settings

    get_settings.cache_clear()
    command.upgrade(config, "head")
    yield url
    from api.persistence.db import get_engine

    get_engine().dispose()
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings_env(database_url, tmp_path, monkeypatch):
    """Settings for one test: its own artifact root; keys off unless the test turns them on."""
    from api.settings import get_settings

    monkeypatch.setenv("LIMINAL_DATABASE_URL", database_url)
    monkeypatch.setenv("LIMINAL_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.setenv("LIMINAL_BROKER_URL", "redis://127.0.0.1:6379/15")
    get_settings.cache_clear()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE artifacts, job_events, jobs, files, api_keys")
    yield monkeypatch
    get_settings.cache_clear()


@pytest.fixture
def sent(monkeypatch):
    """Records job ids the API sends instead of publishing them."""
    sent_ids: list[str] = []
    import api.queue

    monkeypatch.setattr(api.queue, "enqueue_job", lambda job_id: sent_ids.append(job_id) or True)
    return sent_ids


@pytest.fixture
def client(settings_env, sent):
    from fastapi.testclient import TestClient

    from api.main import create_app

    with TestClient(create_app()) as c:
        yield c
