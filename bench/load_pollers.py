"""The API under load: concurrent pollers of ``GET /jobs/{id}`` and a steady stream of ``POST /jobs/finetune``
against the real server, on loopback. Not part of CI:

    python -m bench.load_pollers --pollers 50 --seconds 60 --json bench/results/load-pollers.json

Without ``--url`` it starts the stack itself: a fresh Postgres database built by the migrations (dropped
afterwards), a Redis database number of its own (emptied before and after; no worker consumes it, so the
created jobs stay queued), API keys required, and uvicorn as docker-compose.yml runs it (``--workers 2``).
It makes an API key with ``liminal keys create``, uploads one dataset, creates ``--jobs`` jobs to poll, then for
``--seconds`` runs the pollers (each on its own connection: GET a random job, then the next, no pause), one
creator (``--create-rate`` POSTs per second on a fixed schedule, each with its own Idempotency-Key) and, with
``--upload-mb``, one uploader (a dataset of that size every ``--upload-every`` seconds). Any non-2xx answer or
failed connection is an error. Latencies are measured by the client, which shares the machine's cores with the
server; the result says how the CPU was shared (client, API processes, their Postgres backends, the rest).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from api.client import ApiClient

REPO = Path(__file__).resolve().parents[1]


def dataset(min_bytes: int) -> bytes:
    """A valid JSONL dataset of at least ``min_bytes`` (eight rows at the least)."""
    rows: list[str] = []
    size = i = 0
    while size < min_bytes or i < 8:
        row = json.dumps({"prompt": f"Numbers {i}, {i + 1}, {i + 2}. Continue.", "completion": f"{i + 3}, {i + 4}"})
        rows.append(row)
        size += len(row) + 1
        i += 1
    return ("\n".join(rows) + "\n").encode()


@dataclass
class Route:
    """Latencies (seconds) and errors of one route."""

    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    def summary(self, seconds: float) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(q: float) -> float:
            return 1000 * lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")

        return {
            "requests": len(lat) + sum(self.errors.values()),
            "ok": len(lat),
            "errors": sum(self.errors.values()),
            "error_kinds": self.errors,
            "per_s": len(lat) / seconds,
            "p50_ms": pct(0.50),
            "p90_ms": pct(0.90),
            "p99_ms": pct(0.99),
            "max_ms": 1000 * lat[-1] if lat else float("nan"),
            "mean_ms": 1000 * statistics.fmean(lat) if lat else float("nan"),
        }


class StackMeter:
    """CPU seconds of this client, the API's process tree, the live Postgres backends of its database and the
    whole machine, and the sessions Postgres has opened on that database (a pool too small for the load opens
    and closes connections all the time); the stack's parts are known only when this script started it."""

    def __init__(self, server_pid: int | None = None, database: str | None = None, admin_url: str = "") -> None:
        self.server_pid = server_pid
        self.database = database
        self.admin_url = admin_url

    @staticmethod
    def _seconds(processes: list[psutil.Process]) -> float:
        total = 0.0
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        return total

    def sample(self) -> dict[str, float]:
        machine = psutil.cpu_times()
        own = os.times()
        result = {
            "machine": machine.user + machine.nice + machine.system + machine.irq + machine.softirq,
            "client": own.user + own.system,
        }
        if self.server_pid is not None:
            server = psutil.Process(self.server_pid)
            result["api"] = self._seconds([server, *server.children(recursive=True)])
        if self.database is not None:
            backends = []
            for process in psutil.process_iter(["cmdline"]):
                title = " ".join(process.info["cmdline"] or [])
                if title.startswith("postgres:") and f" {self.database} " in title:
                    backends.append(process)
            result["postgres"] = self._seconds(backends)
        return result

    def sessions(self) -> int | None:
        """Sessions opened on the database so far (Postgres's statistics, flushed about once a second)."""
        if self.database is None:
            return None
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", (self.database,)).fetchone()
        return None if row is None else int(row[0])

    @staticmethod
    def cores(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
        """Cores used by each part over ``seconds``; ``other`` is the rest of the machine (other users)."""
        used = {name: (after[name] - before[name]) / seconds for name in after}
        used["other"] = max(0.0, used["machine"] - sum(v for k, v in used.items() if k != "machine"))
        return used


async def timed(route: Route, call: Any) -> httpx.Response | None:
    start = time.perf_counter()
    try:
        response: httpx.Response = await call
    except httpx.HTTPError as exc:
        route.error(type(exc).__name__)
        return None
    if response.is_success:
        route.latencies.append(time.perf_counter() - start)
    else:
        route.error(f"HTTP {response.status_code}")
    return response


async def load(url: str, key: str, args: argparse.Namespace, meter: StackMeter) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        upload = await client.post("/files", files={"file": ("rows.jsonl", dataset(0))})
        upload.raise_for_status()
        body = {"method": "normal", "model_name": "smollm2-135m-instruct", "train_data_with_trait": upload.json()["id"]}
        job_ids = []
        for _ in range(args.jobs):
            r = await client.post("/jobs/finetune", json=body, headers={"Idempotency-Key": secrets.token_hex(16)})
            r.raise_for_status()
            job_ids.append(r.json()["id"])

        get, post, files = Route(), Route(), Route()
        deadline = time.perf_counter() + args.seconds

        async def poller(seed: int) -> None:
            # A client (and connection) per poller, as separate pollers would have; one pool shared by all 50
            # costs the client several times the CPU per request, which the server then lacks.
            rng = random.Random(seed)
            limits = httpx.Limits(max_connections=1)
            async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30, limits=limits) as own:
                while time.perf_counter() < deadline:
                    await timed(get, own.get(f"/jobs/{rng.choice(job_ids)}"))

        async def every(interval: float, action: Any) -> None:
            """Start ``action`` on a fixed schedule, not after the previous one answers: a steady rate."""
            started = []
            next_at = time.perf_counter()
            while time.perf_counter() < deadline:
                started.append(asyncio.create_task(action()))
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            await asyncio.gather(*started)

        async def create() -> None:
            key = secrets.token_hex(16)
            r = await timed(post, client.post("/jobs/finetune", json=body, headers={"Idempotency-Key": key}))
            if r is not None and r.is_success:
                job_ids.append(r.json()["id"])

        payload = dataset(int(args.upload_mb * 1e6))

        async def upload_one() -> None:
            await timed(files, client.post("/files", files={"file": ("load.jsonl", payload)}))

        tasks = [every(1 / args.create_rate, create), *(poller(i) for i in range(args.pollers))]
        if args.upload_mb > 0:
            tasks.append(every(args.upload_every, upload_one))
        sessions_before, before = meter.sessions(), meter.sample()
        started = time.perf_counter()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
        cores = StackMeter.cores(before, meter.sample(), elapsed)
        await asyncio.sleep(1.5)  # the statistics of the backends' last transactions
        sessions_after = meter.sessions()
    routes = {"GET /jobs/{id}": get.summary(elapsed), "POST /jobs/finetune": post.summary(elapsed)}
    if args.upload_mb > 0:
        routes[f"POST /files ({args.upload_mb:g} MB)"] = files.summary(elapsed)
    return {
        "pollers": args.pollers,
        "seconds": elapsed,
        "create_rate": args.create_rate,
        "upload_mb": args.upload_mb,
        "upload_every_s": args.upload_every if args.upload_mb > 0 else None,
        "jobs_polled": len(job_ids),
        "routes": routes,
        "cpu_cores": cores,
        "postgres_sessions_opened": (
            sessions_after - sessions_before if sessions_after is not None and sessions_before is not None else None
        ),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def local_stack(admin_url: str, redis_url: str, workers: int) -> Iterator[tuple[str, str, StackMeter]]:
    """A fresh database, the migrations, a key and uvicorn; yields (base URL, API key, a meter of the stack's
    CPU); removes it all."""
    import psycopg
    import redis

    name = f"liminal_load_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    broker = f"{redis_url}/14"
    redis.Redis.from_url(broker).flushdb()
    tmp = Path(tempfile.mkdtemp(prefix="liminal-load-"))
    env = os.environ | {
        "LIMINAL_DATABASE_URL": admin_url.rsplit("/", 1)[0] + f"/{name}",
        "LIMINAL_BROKER_URL": broker,
        "LIMINAL_ARTIFACT_ROOT": str(tmp / "artifacts"),
        "LIMINAL_REQUIRE_API_KEYS": "true",
    }
    cli = [sys.executable, "-m", "api.cli"]
    server = None
    ready = False
    try:
        subprocess.run([*cli, "migrate"], env=env, cwd=REPO, check=True, capture_output=True)
        made = subprocess.run([*cli, "keys", "create", "load"], env=env, cwd=REPO, check=True, capture_output=True)
        match = re.search(r"^key: (\S+)$", made.stdout.decode(), re.M)
        if match is None:
            raise RuntimeError(f"no key in the output of 'liminal keys create': {made.stdout!r}")
        port = _free_port()
        log = (tmp / "uvicorn.log").open("wb")
        uvicorn = ["uvicorn", "api.main:app", "--port", str(port), "--workers", str(workers), "--no-access-log"]
        server = subprocess.Popen(
            [sys.executable, "-m", *uvicorn],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a process group of its own: the workers go with it
        )
        url = f"http://127.0.0.1:{port}"
        probe = ApiClient(url)
        for _ in range(100):
            if probe.ready():
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"the API did not become ready; see {tmp / 'uvicorn.log'}")
        ready = True
        yield url, match.group(1), StackMeter(server.pid, name, admin_url)
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        shutil.rmtree(tmp if ready else tmp / "artifacts", ignore_errors=True)  # the log of a failed start stays
        redis.Redis.from_url(broker).flushdb()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| route | requests | errors | per s | p50 ms | p90 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for route, r in result["routes"].items():
        lines.append(
            f"| `{route}` | {r['requests']} | {r['errors']} | {r['per_s']:.1f} | {r['p50_ms']:.1f} | "
            f"{r['p90_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} |"
        )
    cores = ", ".join(f"{name} {used:.2f}" for name, used in result["cpu_cores"].items())
    lines += ["", f"CPU cores used: {cores} (of {result['machine']['cpu_cores']})"]
    if result["postgres_sessions_opened"] is not None:
        lines.append(f"Postgres sessions opened during the load: {result['postgres_sessions_opened']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="an API already running (then --key is needed); default: start one")
    parser.add_argument("--key", help="API key for --url")
    parser.add_argument("--pollers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--jobs", type=int, default=200, help="jobs created before the load starts")
    parser.add_argument("--create-rate", type=float, default=5.0, help="POST /jobs/finetune per second")
    parser.add_argument("--upload-mb", type=float, default=0, help="also upload a dataset this large (0: none)")
    parser.add_argument("--upload-every", type=float, default=5.0, help="seconds between uploads")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers of the API this script starts")
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    if args.url:
        if not args.key:
            parser.error("--url needs --key")
        result = asyncio.run(load(args.url, args.key, args, StackMeter()))
    else:
        with local_stack(args.admin_url, args.redis_url, args.workers) as (url, key, meter):
            result = asyncio.run(load(url, key, args, meter))
        result["api_workers"] = args.workers
    result["machine"] = {
        "cpu_cores": os.cpu_count(),
        "load_average_1min_before": load_before,
        "note": "client and server on the same machine (loopback), shared with other users",
    }
    print(json.dumps(result, indent=2))
    print(markdown(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    errors = sum(r["errors"] for r in result["routes"].values())
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
