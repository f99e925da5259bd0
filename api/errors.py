"""One JSON error shape for every 4xx/5xx: ``{"error": {"code", "message", "field"?, "details"?}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, *, field: str | None = None, details: Any | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field, self.details = status, code, message, field, details


class ErrorInfo(BaseModel):
    code: str
    message: str
    field: str | None = None
    details: Any | None = None


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: ErrorInfo


_MEANINGS = {
    400: "The body could not be parsed (malformed JSON or multipart)",
    401: "Missing, unknown or revoked API key",
    404: "No such object for this key",
    409: "Conflict: Idempotency-Key reused with another body, or the object is not in a state that allows this",
    413: "Body or upload larger than the server's limit",
    422: "Invalid request; `error.field` names the field",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for error answers, all with the one error shape."""
    return {code: {"model": ErrorBody, "description": _MEANINGS[code]} for code in codes}


def error_body(code: str, message: str, field: str | None = None, details: Any | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    if details is not None:
        error["details"] = details
    return {"error": error}


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, "not_found", f"no {what} '{ident}'")


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.field, exc.details), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": _loc(tuple(e.get("loc", ()))), "message": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        message = "; ".join(f"{d['field']}: {d['message']}" for d in details[:10])
        field = details[0]["field"] if details else None
        return JSONResponse(error_body("invalid_request", message, field, details), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(error_body("internal", "internal server error"), status_code=500)
