"""Request dependencies as short Annotated aliases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header
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


def current_owner(
    session: SessionDep, settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
) -> str:
    """The caller: the id of its API key when keys are required, else ``anonymous``."""
    if not settings.require_api_keys:
        return ANONYMOUS
    unauthorized = ApiError(401, "unauthorized", "a valid API key is required: Authorization: Bearer <key>")
    if not authorization or not authorization.startswith("Bearer "):
        raise unauthorized
    key_id = verify_key(session, authorization.removeprefix("Bearer ").strip())
    if key_id is None:
        raise unauthorized
    return key_id


OwnerDep = Annotated[str, Depends(current_owner)]
