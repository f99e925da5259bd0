"""Request dependencies as short Annotated aliases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.auth import ANONYMOUS, verify_key
from api.errors import ApiError
from api.persistence.db import session_factory
from api.settings import Settings, get_settings


def _session() -> Iterator[Session]:
    session = session_factory()()
    try:
        yield session
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(_session)]


_bearer = HTTPBearer(auto_error=False, description="An API key made with `liminal keys create`")


def current_owner(
    session: SessionDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
) -> str:
    """The caller: the id of its API key when keys are required, else ``anonymous``."""
    if not settings.require_api_keys:
        return ANONYMOUS
    unauthorized = ApiError(401, "unauthorized", "a valid API key is required: Authorization: Bearer <key>")
    if credentials is None:
        raise unauthorized
    key_id = verify_key(session, credentials.credentials.strip())
    if key_id is None:
        raise unauthorized
    return key_id


OwnerDep = Annotated[str, Depends(current_owner)]


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def clean_parameters(request: Request) -> None:
    """Refuse query parameters the route does not declare (a misspelt ``limit`` would otherwise be ignored)
    and NUL characters in path, query and Idempotency-Key values (no database text can hold them)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    allowed = _query_names(dependant) if dependant is not None else set(request.query_params)
    for name in request.query_params:
        if name not in allowed:
            raise ApiError(422, "invalid_request", f"{name or '(empty name)'}: unknown query parameter", field=name)
    values = [*request.path_params.items(), *request.query_params.items()]
    values.append(("Idempotency-Key", request.headers.get("idempotency-key", "")))
    for name, value in values:
        if "\x00" in str(value):
            raise ApiError(422, "invalid_request", f"{name}: NUL characters are not allowed", field=name)
