"""The ASGI app: ``uvicorn api.main:app``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool

from api import errors
from api.deps import clean_parameters, current_owner
from api.limits import BodyLimits
from api.persistence.db import session_scope
from api.routes import files, health, jobs
from api.settings import Settings, get_settings
from api.storage import sweep_orphan_uploads

log = logging.getLogger(__name__)


def sweep_at_start(settings: Settings) -> None:
    """Remove upload files orphaned by an earlier crash; a database that does not answer yet skips it."""
    try:
        with session_scope() as session:
            removed = sweep_orphan_uploads(settings, session, grace_s=settings.orphan_grace_s)
    except Exception as exc:
        log.warning("orphaned-upload sweep skipped: %s", exc)
        return
    if removed:
        log.warning("removed %d orphaned upload file(s): %s", len(removed), ", ".join(p.name for p in removed))


def create_app() -> FastAPI:
    settings = get_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(sweep_at_start, settings)
        yield

    app = FastAPI(
        lifespan=lifespan,
        title="liminal-training",
        version="0.1.0",
        description="Run subliminal- and liminal-learning experiments by HTTP: generate teacher data, fine-tune "
        "students (normal or liminal), evaluate the trait, download adapters.",
    )
    errors.install(app)
    app.add_middleware(BodyLimits, settings=settings)
    app.include_router(health.router)
    for router in (files.router, jobs.router):
        app.include_router(
            router,
            dependencies=[Depends(current_owner), Depends(clean_parameters)],
            responses=errors.error_responses(401, 422),
        )
    return app


app = create_app()
