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
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.api.helpers import GOOD_ROWS, jsonl
from tests.e2e.conftest import Stack, free_port, running_stack, wait_for

pytestmark = pytest.mark.slow
MODEL = "smollm2-135m-instruct"
STEPS = 10  # long enough to be running across each restart (a step takes about a second on 2 cores)


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
        pytest.fail("redis-server is not on PATH; these tests start their own Redis server")
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


def runs(api, job_id: str) -> tuple[list[int], list[int]]:
    """The attempts that started running the job, and the training steps it reported, as its events show."""
    events = api.events(job_id, limit=1000)["data"]
    started = [e["attempt"] for e in events if e["kind"] == "lifecycle" and e["message"].startswith("running")]
    return started, [e["data"]["step"] for e in events if e["kind"] == "metrics"]


def stored_tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_redis_restart_with_a_job_running_and_one_queued_loses_nothing(api, private_stack, redis_server, tmp_path):
    running = finetune(api, tmp_path, max_steps=STEPS)
    wait_for(api, running["id"], lambda j: (j["progress"].get("step") or 0) >= 1)
    queued = api.create_job(
        "generate", {"model": {"id": MODEL}, "prompt_set": {"size": 2}, "sample_cfg": {"max_new_tokens": 4}}
    )
    assert api.get_job(queued["id"])["status"] == "queued"

    redis_server.kill()  # the queued message and the running job's unacknowledged delivery go with it
    time.sleep(1)
    redis_server.start()
    assert api.get_job(running["id"])["status"] == "running", "the job was running across the restart"

    first = api.wait(running["id"], poll_s=0.5, timeout_s=300)
    second = api.wait(queued["id"], poll_s=0.5, timeout_s=300)
    assert first["status"] == "succeeded", (first, private_stack.log("worker"))
    assert second["status"] == "succeeded", (second, private_stack.log("reaper"), private_stack.log("worker"))
    # The worker reconnected and the running job went on: one attempt, every step once.
    assert first["attempt"] == 1 and runs(api, first["id"]) == ([1], list(range(1, STEPS + 1)))
    # The lost message was re-sent from Postgres; any duplicate delivery found nothing to claim.
    assert second["attempt"] == 1 and runs(api, second["id"]) == ([1], [])
    assert second["result"]["rows"] == 2


def test_api_killed_during_an_upload_stores_nothing(api, private_stack):
    root = private_stack.tmp / "artifacts"
    before = stored_tree(root)
    with psycopg.connect(private_stack.env["LIMINAL_DATABASE_URL"]) as conn:
        rows_before = conn.execute("SELECT id FROM files ORDER BY id").fetchall()
    host, port = private_stack.base_url.removeprefix("http://").split(":")
    body = jsonl(GOOD_ROWS) * 40_000  # 14 MB, of which half is sent, in chunks
    head = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\n'
        b"Content-Type: application/jsonl\r\n\r\n"
    )
    chunk = 1 << 18
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            f"POST /files HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {len(head) + len(body) + 8}\r\n\r\n".encode()
            + head
        )
        for offset in range(0, len(body) // 2, chunk):
            sock.sendall(body[offset : offset + chunk])
            time.sleep(0.01)
        private_stack.kill("api", signal.SIGKILL)
        sock.settimeout(10)
        try:
            answer = sock.recv(1024)
        except ConnectionResetError:
            answer = b""
    assert answer == b"", "the API had not answered: the upload was still arriving when it was killed"
    private_stack.start_api()
    private_stack.wait_ready()

    assert stored_tree(root) == before, "no half-stored file and no temp file under the storage root"
    with psycopg.connect(private_stack.env["LIMINAL_DATABASE_URL"]) as conn:
        assert conn.execute("SELECT id FROM files ORDER BY id").fetchall() == rows_before


def test_pollers_ride_over_an_api_restart(api, private_stack, tmp_path):
    job = finetune(api, tmp_path, max_steps=STEPS)
    wait_for(api, job["id"], lambda j: (j["progress"].get("step") or 0) >= 1)
    seen: list[tuple[float, str, int]] = []
    by_poller: dict[int, list[tuple[int, int]]] = {i: [] for i in range(4)}
    stop = threading.Event()

    def poll(index: int) -> None:
        with httpx.Client(base_url=private_stack.base_url, timeout=5) as client:
            while not stop.is_set():
                try:
                    body = client.get(f"/jobs/{job['id']}").json()
                    seen.append((time.monotonic(), body["status"], body["progress"].get("step") or 0))
                    by_poller[index].append((order[body["status"]], body["progress"].get("step") or 0))
                except httpx.HTTPError:
                    seen.append((time.monotonic(), "error", 0))
                time.sleep(0.05)

    order = {"running": 0, "succeeded": 1}
    pollers = [threading.Thread(target=poll, args=(i,)) for i in range(4)]
    for t in pollers:
        t.start()
    time.sleep(0.5)
    killed = time.monotonic()
    private_stack.kill("api", signal.SIGKILL)
    private_stack.start_api()
    private_stack.wait_ready()
    ready = time.monotonic()
    final = api.wait(job["id"], poll_s=0.3, timeout_s=300)
    time.sleep(0.3)
    stop.set()
    for t in pollers:
        t.join()

    assert final["status"] == "succeeded" and final["attempt"] == 1, (final, private_stack.log("worker"))
    seen.sort()
    errors = [at for at, status, _ in seen if status == "error"]
    assert errors, "the pollers saw the API go away"
    assert all(killed <= at <= ready + 1 for at in errors), "errors only while the API was down"
    for states in by_poller.values():  # each poller's requests are sequential; across pollers they interleave
        assert states == sorted(states) and states[-1] == (1, STEPS), "the state only moves forward, to the end"
    before = max(step for at, status, step in seen if at < killed and status == "running")
    after = [step for at, status, step in seen if at > ready and status == "running"]
    assert after and after[0] >= before, "after the restart the pollers saw the same running job go on"

    listed = api.http.get(f"/jobs/{job['id']}/artifacts").json()["data"]
    job_dir = private_stack.tmp / "artifacts" / "jobs" / job["id"]
    on_disk = {
        str(p.relative_to(job_dir))
        for p in job_dir.rglob("*")
        if p.is_file() and "checkpoints" not in p.parts and not p.name.startswith(".")
    }
    assert {a["name"] for a in listed} == on_disk and "adapter_model.safetensors" in on_disk
    for artifact in listed:
        content = api.download_artifact(job["id"], artifact["name"])
        assert hashlib.sha256(content).hexdigest() == artifact["sha256"], artifact["name"]
