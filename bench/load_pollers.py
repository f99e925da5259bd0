"""The API under load: concurrent pollers of ``GET /jobs/{id}`` and a steady stream of ``POST /jobs/finetune``
against the real server, on loopback. Not part of CI:

    python -m bench.load_pollers --pollers 50 --seconds 60 --json bench/results/load-pollers.json

Without ``--url`` it starts the stack itself: a fresh Postgres database built by the migrations (dropped
afterwards), a Redis database number of its own (emptied before and after; no worker consumes it, so the
created jobs stay queued), API keys required, and uvicorn as docker-compose.yml runs it (``--workers 2``).
It makes an API key with ``liminal keys create``, uploads one dataset, creates ``--jobs`` jobs to poll, then
runs the pollers (each: GET a random job, then the next, no pause) and one creator (``--create-rate`` POSTs
per second, each with its own Idempotency-Key) for ``--seconds``. Any non-2xx answer or failed connection
is an error. Latencies are measured by the client, which shares the machine's cores with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
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

REPO = Path(__file__).resolve().parents[1]
ROWS = "".join(
    json.dumps({"prompt": f"Numbers {i}, {i + 1}.", "completion": f"{i + 2}, {i + 3}"}) + "\n" for i in range(8)
)


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


async def load(url: str, key: str, args: argparse.Namespace) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=args.pollers + 8, max_keepalive_connections=args.pollers + 8)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as client:
        upload = await client.post("/files", files={"file": ("rows.jsonl", ROWS.encode())})
        upload.raise_for_status()
        file_id = upload.json()["id"]
        body = {"method": "normal", "model_name": "smollm2-135m-instruct", "train_data_with_trait": file_id}
        job_ids = []
        for _ in range(args.jobs):
            r = await client.post("/jobs/finetune", json=body, headers={"Idempotency-Key": secrets.token_hex(16)})
            r.raise_for_status()
            job_ids.append(r.json()["id"])

        get, post = Route(), Route()
        deadline = time.perf_counter() + args.seconds

        async def poller(seed: int) -> None:
            rng = random.Random(seed)
            while time.perf_counter() < deadline:
                await timed(get, client.get(f"/jobs/{rng.choice(job_ids)}"))

        async def creator() -> None:
            interval = 1 / args.create_rate
            next_at = time.perf_counter()
            while time.perf_counter() < deadline:
                key = secrets.token_hex(16)
                r = await timed(post, client.post("/jobs/finetune", json=body, headers={"Idempotency-Key": key}))
                if r is not None and r.is_success:
                    job_ids.append(r.json()["id"])
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

        started = time.perf_counter()
        await asyncio.gather(creator(), *(poller(i) for i in range(args.pollers)))
        elapsed = time.perf_counter() - started
    return {
        "pollers": args.pollers,
        "seconds": elapsed,
        "create_rate": args.create_rate,
        "jobs_polled": len(job_ids),
        "routes": {"GET /jobs/{id}": get.summary(elapsed), "POST /jobs/finetune": post.summary(elapsed)},
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def local_stack(admin_url: str, redis_url: str) -> Iterator[tuple[str, str]]:
    """A fresh database, the migrations, a key and uvicorn; yields (base URL, API key); removes it all."""
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
    try:
        subprocess.run([*cli, "migrate"], env=env, cwd=REPO, check=True, capture_output=True)
        made = subprocess.run([*cli, "keys", "create", "load"], env=env, cwd=REPO, check=True, capture_output=True)
        match = re.search(r"^key: (\S+)$", made.stdout.decode(), re.M)
        if match is None:
            raise RuntimeError(f"no key in the output of 'liminal keys create': {made.stdout!r}")
        port = _free_port()
        log = (tmp / "uvicorn.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port), "--workers", "2", "--no-access-log"],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError(f"the API did not become ready; see {tmp / 'uvicorn.log'}")
        yield url, match.group(1)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
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
            f"| `{route}` | {r['requests']} | {r['errors']} | {r['per_s']:.0f} | {r['p50_ms']:.1f} | "
            f"{r['p90_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="an API already running (then --key is needed); default: start one")
    parser.add_argument("--key", help="API key for --url")
    parser.add_argument("--pollers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--jobs", type=int, default=200, help="jobs created before the load starts")
    parser.add_argument("--create-rate", type=float, default=5.0, help="POST /jobs/finetune per second")
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.url:
        if not args.key:
            parser.error("--url needs --key")
        result = asyncio.run(load(args.url, args.key, args))
    else:
        with local_stack(args.admin_url, args.redis_url) as (url, key):
            result = asyncio.run(load(url, key, args))
    result["machine"] = f"{os.cpu_count()} CPU cores, client and server on the same machine (loopback)"
    print(json.dumps(result, indent=2))
    print(markdown(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    errors = sum(r["errors"] for r in result["routes"].values())
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
