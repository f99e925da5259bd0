"""Restarts of the broker and of the API under real processes, on a Redis server of this module's own (so the
machine's shared Redis is never touched): a Redis restart with one job running and one queued loses
nothing; an API killed in the middle of an upload stores nothing; pollers ride over an API restart."""

from __future__ import annotations

import hashlib
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tests.api.helpers import GOOD_ROWS, jsonl
from tests.e2e.conftest import Stack, free_port, running_stack, wait_for

pytestmark = pytest.mark.slow
MODEL = "smollm2-135m-instruct"


class RedisServer:
    """A redis-server on loopback without persistence, so a restart starts empty."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed; .ci/run installs and starts Redis")
    server = RedisServer(free_port())
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.kill()


@pytest.fixture(scope="module")
def private_stack(tmp_path_factory, redis_server) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("restarts"), f"redis://127.0.0.1:{redis_server.port}/0") as s:
        yield s


@pytest.fixture(scope="module")
def api(private_stack):
    from api.client import ApiClient

    return ApiClient(private_stack.base_url)


def finetune(api, tmp_path, max_steps: int) -> dict:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(jsonl(GOOD_ROWS))
    file_id = api.upload_file(path)["id"]
    return api.create_job(
        "finetune",
        {"method": "normal", "model_name": MODEL, "train_data_with_trait": file_id, "max_steps": max_steps,
         "batch_size": 2, "checkpoint_every": 2},
    )  # fmt: skip


def test_redis_restart_with_a_job_running_and_one_queued_loses_nothing(api, private_stack, redis_server, tmp_path):
    running = finetune(api, tmp_path, max_steps=8)
    wait_for(api, running["id"], lambda j: j["status"] == "running" and (j["progress"].get("step") or 0) >= 1)
    queued = api.create_job(
        "generate", {"model": {"id": MODEL}, "prompt_set": {"size": 2}, "sample_cfg": {"max_new_tokens": 4}}
    )
    assert api.get_job(queued["id"])["status"] == "queued"

    redis_server.kill()  # its message and the running job's unacked delivery are gone with it
    time.sleep(2)
    redis_server.start()

    first = api.wait(running["id"], poll_s=0.5, timeout_s=600)
    second = api.wait(queued["id"], poll_s=0.5, timeout_s=600)
    assert first["status"] == "succeeded", (first, private_stack.log("worker"))
    assert second["status"] == "succeeded", (second, private_stack.log("reaper"), private_stack.log("worker"))
    assert second["attempt"] == 1, "the queued job was re-sent from Postgres and ran once"
    steps = [e["data"]["step"] for e in api.events(first["id"], limit=1000)["data"] if e["kind"] == "metrics"]
    assert steps[-1] == 8
    if first["attempt"] == 1:
        assert steps == sorted(set(steps)), "the running job went on: every step once"


def test_api_killed_during_an_upload_stores_nothing(api, private_stack):
    files_dir = private_stack.tmp / "artifacts" / "files"
    before = sorted(p.name for p in files_dir.iterdir()) if files_dir.exists() else []
    with psycopg.connect(private_stack.env["LIMINAL_DATABASE_URL"]) as conn:
        rows_before = conn.execute("SELECT count(*) FROM files").fetchone()
    host, port = private_stack.base_url.removeprefix("http://").split(":")
    body = jsonl(GOOD_ROWS) * 40_000  # ~3 MB, sent in part
    head = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\n'
        b"Content-Type: application/jsonl\r\n\r\n"
    )
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            f"POST /files HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {len(head) + len(body) + 8}\r\n\r\n".encode()
        )
        sock.sendall(head + body[: len(body) // 2])
        time.sleep(0.5)
        private_stack.kill("api", signal.SIGKILL)
    private_stack.start_api()
    private_stack.wait_ready()

    after = sorted(p.name for p in files_dir.iterdir()) if files_dir.exists() else []
    assert after == before, "no half-stored file, no temp file left"
    with psycopg.connect(private_stack.env["LIMINAL_DATABASE_URL"]) as conn:
        assert conn.execute("SELECT count(*) FROM files").fetchone() == rows_before


def test_pollers_ride_over_an_api_restart(api, private_stack, tmp_path):
    job = finetune(api, tmp_path, max_steps=6)
    wait_for(api, job["id"], lambda j: j["status"] == "running")
    seen: list[tuple[float, str]] = []
    stop = threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=private_stack.base_url, timeout=5) as client:
            while not stop.is_set():
                try:
                    seen.append((time.monotonic(), client.get(f"/jobs/{job['id']}").json()["status"]))
                except httpx.HTTPError:
                    seen.append((time.monotonic(), "error"))
                time.sleep(0.05)

    pollers = [threading.Thread(target=poll) for _ in range(4)]
    for t in pollers:
        t.start()
    time.sleep(1)
    killed = time.monotonic()
    private_stack.kill("api", signal.SIGKILL)
    time.sleep(1)
    private_stack.start_api()
    private_stack.wait_ready()
    ready = time.monotonic()
    final = api.wait(job["id"], poll_s=0.5, timeout_s=600)
    time.sleep(0.5)
    stop.set()
    for t in pollers:
        t.join()

    assert final["status"] == "succeeded", (final, private_stack.log("worker"))
    errors = [at for at, status in seen if status == "error"]
    assert errors, "the pollers saw the API go away"
    assert all(killed <= at <= ready + 1 for at in errors), "errors only while the API was down"
    order = {"queued": 0, "running": 1, "succeeded": 2}
    statuses = [order[status] for _, status in sorted(seen) if status != "error"]
    assert statuses == sorted(statuses) and statuses[-1] == 2, "the state only moves forward"
    for artifact in api.http.get(f"/jobs/{job['id']}/artifacts").json()["data"]:
        content = api.http.get(f"/jobs/{job['id']}/artifacts/{artifact['name']}").content
        assert hashlib.sha256(content).hexdigest() == artifact["sha256"], artifact["name"]
