"""Property-based tests of the whole HTTP API from its own OpenAPI schema (Schemathesis), on the real app and
Postgres with API keys required: generated requests, valid and invalid, never get a 5xx; answers conform to
the schema (status codes, content types, bodies) and invalid ones are refused with a 4xx; every operation that
declares the bearer scheme refuses requests without a key or with a wrong one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation

OPEN_PATHS = {"/healthz", "/readyz"}
N_EXAMPLES = 100
SEMANTIC = [schemathesis.checks.positive_data_acceptance]
"""Excluded: a schema-valid request may still be refused with 422 for what a schema cannot say (a file id
that does not exist, a file whose lines are not rows)."""


@pytest.fixture
def api(settings_env, sent) -> tuple[Any, dict[str, str]]:
    """The schema of the real app, and the header of a live key."""
    from api.auth import create_key
    from api.main import create_app
    from api.persistence.db import session_scope
    from api.settings import get_settings

    settings_env.setenv("LIMINAL_REQUIRE_API_KEYS", "true")
    get_settings.cache_clear()
    with session_scope() as session:
        _, secret = create_key(session, "schemathesis")
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app())
    return schema, {"Authorization": f"Bearer {secret}"}


def for_every_operation(schema: Any, mode: GenerationMode, examples: int, check: Callable[[Any], None]) -> list[str]:
    """Run ``check`` on ``examples`` generated cases of every operation; the failures, one line each."""
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            check(case)

        try:
            run()
        except Unsatisfiable:
            if mode is GenerationMode.POSITIVE:
                raise
            # an operation without parameters or body has no invalid input to generate
        except Exception as exc:
            failures.append(f"{operation.label} ({mode.value}): {type(exc).__name__}: {str(exc)[:2000]}")
    return failures


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_generated_requests_get_no_5xx_and_conform_to_the_schema(api, mode):
    schema, key = api

    def check(case: Any) -> None:
        excluded = list(SEMANTIC)
        if case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER):
            # the case broke or left out a header, and the key sent with it may make the request valid again
            excluded.append(schemathesis.checks.negative_data_rejection)
        case.call_and_validate(headers=key, excluded_checks=excluded)

    failures = for_every_operation(schema, mode, N_EXAMPLES, check)
    assert not failures, "\n\n".join(failures)


def test_declared_auth_holds_for_every_operation(api):
    schema, _ = api

    def check(case: Any) -> None:
        if not case.operation.definition.raw.get("security"):
            assert case.operation.path in OPEN_PATHS, "only the health checks are open"
            return
        headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        assert case.call(headers=headers).status_code == 401
        assert case.call(headers=headers | {"Authorization": "Bearer lt_not-a-key"}).status_code == 401

    failures = for_every_operation(schema, GenerationMode.POSITIVE, 3, check)
    assert not failures, "\n\n".join(failures)
