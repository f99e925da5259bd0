"""The ASGI app: ``uvicorn api.main:app``."""

from __future__ import annotations

import logging

from fastapi import Depends, FastAPI

from api import errors
from api.deps import clean_parameters, current_owner
from api.limits import BodyLimits
from api.routes import files, health, jobs
from api.settings import get_settings


def create_app() -> FastAPI:
    settings = get_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = FastAPI(
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
