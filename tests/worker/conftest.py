"""Worker tests run against the same real Postgres database (built by the migrations) as the API tests."""

from __future__ import annotations

from tests.api.conftest import database_url, settings_env

__all__ = ["database_url", "settings_env"]
