"""Property-based tests of the whole HTTP API from its own OpenAPI schema (Schemathesis), on the real app and
Postgres with API keys required: generated requests, valid and invalid, never get a 5xx; answers conform to
the schema (status codes, content types, bodies) and invalid ones are refused with a 4xx; every operation that
declares the bearer scheme refuses requests without a key or with a wrong one.

Valid requests name, half of the time, objects that exist (a stored file, a succeeded generate job, a succeeded
finetune job with its adapter files), so that success answers are generated and checked too, not only 404s."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation

from tests.api.helpers import GOOD_ROWS, jsonl

OPEN_PATHS = {"/healthz", "/readyz"}
N_EXAMPLES = 100
SEMANTIC = [schemathesis.checks.positive_data_acceptance]
"""Excluded: a schema-valid request may still be refused with 422 for what a schema cannot say (a file id
that does not exist, a file whose lines are not rows)."""


@dataclass
class Api:
    schema: Any
    key: dict[str, str]
    known: dict[str, list[Any]]
    """Values of existing objects by parameter or body field name, mixed into valid requests."""
    seeded_jobs: list[str]


@pytest.fixture
def api(settings_env, sent) -> Api:
    """The schema of the real app, the header of a live key, and objects that exist for that key."""
    from fastapi.testclient import TestClient
    from sqlalchemy import update

    from api.auth import create_key
    from api.main import create_app
    from api.persistence.db import session_scope
    from api.persistence.models import Job
    from api.settings import get_settings
    from api.storage import job_dir, record_artifacts

    settings_env.setenv("LIMINAL_REQUIRE_API_KEYS", "true")
    get_settings.cache_clear()
    with session_scope() as session:
        _, secret = create_key(session, "schemathesis")
    key = {"Authorization": f"Bearer {secret}"}
    app = create_app()
    client = TestClient(app, headers=key)
    upload = client.post("/files", files={"file": ("rows.jsonl", jsonl(GOOD_ROWS), "application/jsonl")})
    file_id = upload.json()["id"]
    generate = client.post("/jobs/generate", json={"prompt_set": {"size": 4}}).json()["id"]
    body = {"method": "normal", "model_name": "smollm2-135m-instruct", "train_data_with_trait": file_id}
    finetune = client.post("/jobs/finetune", json=body).json()["id"]
    folder = job_dir(get_settings(), finetune)
    folder.mkdir(parents=True)
    for name in ("adapter_config.json", "adapter_model.safetensors", "summary.json"):
        (folder / name).write_text("{}")
    with session_scope() as session:
        record_artifacts(session, get_settings(), finetune)
        session.execute(update(Job).where(Job.id.in_([generate, finetune])).values(status="succeeded"))
    known: dict[str, list[Any]] = {
        "file": [jsonl(GOOD_ROWS).decode()],
        "file_id": [file_id],
        "job_id": [generate, finetune],
        "name": ["adapter_config.json", "summary.json"],
        "train_data_with_trait": [file_id, generate],
        "train_data_without_trait": [file_id, generate],
        "adapter": [finetune],
    }
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return Api(schema, key, known, [generate, finetune])


def with_known(value: Any, known: dict[str, list[Any]], data: st.DataObject) -> Any:
    """``value`` with, at random, the entries named in ``known`` (at any depth) replaced by existing ones."""
    if isinstance(value, list):
        return [with_known(item, known, data) for item in value]
    if not isinstance(value, dict):
        return value
    return {
        name: data.draw(st.sampled_from(known[name])) if name in known and data.draw(st.booleans()) else item
        for name, item in ((name, with_known(item, known, data)) for name, item in value.items())
    }


def for_every_operation(
    schema: Any, mode: GenerationMode, examples: int, check: Callable[[Any], None], known: dict[str, list[Any]]
) -> list[str]:
    """Run ``check`` on ``examples`` generated cases of every operation, valid ones mixed with ``known``
    values; the failures, one line each."""
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(mode), data=st.data())
        @settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any, data: st.DataObject) -> None:
            if mode is GenerationMode.POSITIVE:
                case.path_parameters = with_known(case.path_parameters, known, data)
                case.body = with_known(case.body, known, data)
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
def test_generated_requests_get_no_5xx_and_conform_to_the_schema(api, sent, mode):
    statuses: dict[str, Counter[int]] = defaultdict(Counter)
    created: list[str] = []

    def check(case: Any) -> None:
        excluded = list(SEMANTIC)
        if case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER):
            # the case broke or left out a header, and the key sent with it may make the request valid again
            excluded.append(schemathesis.checks.negative_data_rejection)
        response = case.call_and_validate(headers=api.key, excluded_checks=excluded)
        statuses[case.operation.label][response.status_code] += 1
        if response.status_code == 202:
            created.append(response.json()["id"])

    failures = for_every_operation(api.schema, mode, N_EXAMPLES, check, api.known)
    assert not failures, "\n\n".join(failures)
    # every new job was sent once; a replayed Idempotency-Key (200) sends nothing again
    assert sorted(sent) == sorted(api.seeded_jobs + created)
    if mode is GenerationMode.POSITIVE:
        # the key holds, and every operation's success answer was generated and checked against the schema
        assert not any(401 in counts for counts in statuses.values()), dict(statuses)
        assert all(any(200 <= s < 300 for s in counts) for counts in statuses.values()), dict(statuses)
        assert len(statuses) == len(list(api.schema.get_all_operations()))


def test_declared_auth_holds_for_every_operation(api):
    def check(case: Any) -> None:
        if not case.operation.definition.raw.get("security"):
            assert case.operation.path in OPEN_PATHS, "only the health checks are open"
            return
        headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        assert case.call(headers=headers).status_code == 401
        assert case.call(headers=headers | {"Authorization": "Bearer lt_not-a-key"}).status_code == 401

    failures = for_every_operation(api.schema, GenerationMode.POSITIVE, 3, check, api.known)
    assert not failures, "\n\n".join(failures)
