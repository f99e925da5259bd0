"""End-to-end fixtures: real uvicorn, Celery worker and reaper processes against real Postgres (a fresh
database built by the migrations) and Redis (a database number of its own, emptied first)."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from tests.api.helpers import REPO

ADMIN_URL = os.environ.get("LIMINAL_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("LIMINAL_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(base_url: str, timeout: float) -> bool:
    """True once ``/readyz`` answers 200; False after ``timeout`` seconds."""
    from api.client import ApiClient

    client = ApiClient(base_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.ready():
            return True
        time.sleep(0.2)
    return False


def wait_for(
    api: Any, job_id: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 180
) -> dict[str, Any]:
    """Poll the job until ``predicate`` holds for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get_job(job_id)
        if predicate(job):
            return dict(job)
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting on {job_id}: {api.get_job(job_id)}")


@dataclass
class Stack:
    env: dict[str, str]
    base_url: str
    tmp: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, *args],
            env=self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def start_api(self) -> None:
        port = self.base_url.rsplit(":", 1)[1]
        self.start("api", ["-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", port])

    def wait_ready(self, timeout: float = 60) -> None:
        if not wait_ready(self.base_url, timeout):
            raise RuntimeError("the API did not become ready:\n" + self.log("api"))

    def start_worker(self) -> None:
        self.start(
            "worker",
            ["-m", "celery", "-A", "worker.celery_app", "worker", "--concurrency", "1", "--pool", "prefork",
             "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
        )  # fmt: skip

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM if name != "worker" else signal.SIGKILL)

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


@contextlib.contextmanager
def running_stack(tmp: Path, broker_url: str) -> Iterator[Stack]:
    """uvicorn, a worker and the reaper on a fresh database and ``broker_url`` (emptied before and after)."""
    name = f"liminal_e2e_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db_url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    redis.Redis.from_url(broker_url).flushdb()
    port = free_port()
    env = {
        **os.environ,
        "LIMINAL_DATABASE_URL": db_url,
        "LIMINAL_BROKER_URL": broker_url,
        "LIMINAL_ARTIFACT_ROOT": str(tmp / "artifacts"),
        "LIMINAL_VAR_DIR": str(tmp / "var"),
        "LIMINAL_HEARTBEAT_INTERVAL_S": "1",
        "LIMINAL_HEARTBEAT_TIMEOUT_S": "8",
        "LIMINAL_REAPER_INTERVAL_S": "1",
        "LIMINAL_RESEND_AFTER_S": "3",
        "LIMINAL_PROGRESS_INTERVAL_S": "0.5",
        "LIMINAL_CANCEL_POLL_S": "0.5",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    subprocess.run([sys.executable, "-m", "api.cli", "migrate"], env=env, cwd=REPO, check=True, capture_output=True)
    s = Stack(env=env, base_url=f"http://127.0.0.1:{port}", tmp=tmp)
    try:
        s.start_api()
        s.start_worker()
        s.start("reaper", ["-m", "api.cli", "reaper"])
        s.wait_ready()
        yield s
    finally:
        s.stop_all()
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        with contextlib.suppress(redis.RedisError):
            redis.Redis.from_url(broker_url).flushdb()


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack"), f"{REDIS_URL}/{1 + secrets.randbelow(14)}") as s:
        yield s


@pytest.fixture(scope="module")
def api(stack):
    from api.client import ApiClient

    return ApiClient(stack.base_url)
