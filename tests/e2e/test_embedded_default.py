"""`liminal serve` with no configuration at all: SQLite, the embedded Redis and a real worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import free_port, wait_ready

pytestmark = pytest.mark.slow


def test_embedded_default_serves_and_runs_a_job(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIMINAL_") or k == "LIMINAL_CACHE_DIR"}
    env["HF_HUB_OFFLINE"] = "1"
    liminal = Path(sys.executable).parent / "liminal"  # the console script the README's `liminal serve` runs
    proc = subprocess.Popen(
        [str(liminal), "serve", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_ready(base, 90), "the embedded server did not become ready"
        assert (tmp_path / "var" / "liminal.db").is_file()  # SQLite, built by the migrations
        assert (tmp_path / "var" / "redis.sock").is_socket()  # the embedded Redis
        job = httpx.post(
            f"{base}/jobs/generate",
            json={
                "model": {"id": "smollm2-135m-instruct"},
                "prompt_set": {"size": 2},
                "sample_cfg": {"max_new_tokens": 4},
            },
        ).json()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            status = httpx.get(f"{base}/jobs/{job['id']}").json()["status"]
            if status in {"succeeded", "failed", "cancelled"}:
                break
            time.sleep(1)
        assert status == "succeeded"
        proc.terminate()  # SIGTERM to `liminal serve` alone: it stops its worker and its Redis
        proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        while group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not group_alive(proc.pid), "a child of `liminal serve` outlived it"
    finally:
        if group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
