"""The HTTP API against real Postgres: uploads, job creation rules, pagination, idempotency, auth, artifacts."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from tests.api.helpers import GOOD_ROWS, jsonl


def upload(client, data: bytes, headers=None):
    return client.post("/files", files={"file": ("d.jsonl", data, "application/jsonl")}, headers=headers or {})


def test_models_and_migrations_agree(database_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from api.persistence.db import normalise_url
    from api.persistence.models import Base

    engine = create_engine(normalise_url(database_url))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_upload_validates_and_stores(client):
    r = upload(client, jsonl(GOOD_ROWS))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["rows"] == 6 and body["id"].startswith("file-") and len(body["sha256"]) == 64
    assert client.get(f"/files/{body['id']}").json()["rows"] == 6
    assert client.get(f"/files/{body['id']}/content").content == jsonl(GOOD_ROWS)


def test_malformed_upload_gets_422_with_line_numbers(client):
    data = jsonl(GOOD_ROWS[:2]) + b"{not json}\n" + b'{"prompt": "x"}\n' + b'["a"]\n'
    r = upload(client, data)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["field"] == "file"
    assert [(d["line"], d["code"]) for d in err["details"]] == [
        (3, "invalid_json"),
        (4, "missing_field"),
        (5, "not_an_object"),
    ]


def test_oversized_upload_is_413(client, settings_env):
    from api.settings import get_settings

    settings_env.setenv("LIMINAL_MAX_UPLOAD_BYTES", "100")
    get_settings.cache_clear()
    from fastapi.testclient import TestClient

    from api.main import create_app

    with TestClient(create_app()) as small:
        r = upload(small, jsonl(GOOD_ROWS))
    assert r.status_code == 413


def finetune_body(file_id: str, **kw):
    return {
        "method": "liminal",
        "model_name": "smollm2-135m-instruct",
        "train_data_with_trait": file_id,
        "max_steps": 3,
        **kw,
    }


def test_create_finetune_job_resolves_the_spec_and_sends_after_commit(client, sent):
    fid = upload(client, jsonl(GOOD_ROWS)).json()["id"]
    r = client.post("/jobs/finetune", json=finetune_body(fid, metadata={"who": "test"}))
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "queued" and job["type"] == "finetune"
    assert job["spec"]["lora_alpha"] == 8 and job["spec"]["tau"] == pytest.approx(1 / 3)
    assert job["spec"]["batch_size"] == 8 and job["metadata"] == {"who": "test"}
    assert sent == [job["id"]]
    assert client.get(f"/jobs/{job['id']}").json()["id"] == job["id"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"train_data_without_trait": "FILE"}, "train_data_without_trait"),
        ({"train_data_with_trait": "file-000000000000000000000000"}, "train_data_with_trait"),
        ({"train_data_with_trait": "job-000000000000000000000000"}, "train_data_with_trait"),
        ({"learning_rate": 5.0}, "learning_rate"),
        ({"lora_rank": 0}, "lora_rank"),
        ({"num_epochs": 10**9}, "num_epochs"),
        ({"unknown_field": 1}, "unknown_field"),
        ({"model_name": "/etc"}, "model_name"),
    ],
)
def test_bad_finetune_specs_are_422_naming_the_field_and_queue_nothing(client, sent, change, field):
    fid = upload(client, jsonl(GOOD_ROWS)).json()["id"]
    body = finetune_body(fid, **{k: (fid if v == "FILE" else v) for k, v in change.items()})
    r = client.post("/jobs/finetune", json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert field in error["message"] or field == error.get("field")
    assert sent == []
    assert client.get("/jobs").json()["data"] == []


def test_evaluate_target_with_a_server_path_is_422_naming_its_model_name(client, sent):
    body = {"targets": [{"label": "base", "model_name": "/etc"}], "trait": {"target": "owl"}}
    r = client.post("/jobs/evaluate", json=body)
    assert r.status_code == 422 and r.json()["error"]["field"] == "targets.0.model_name"
    assert sent == []


def test_generate_job_reference_must_have_succeeded(client, sent):
    gen = client.post("/jobs/generate", json={"trait": {"target": "owl"}, "prompt_set": {"size": 8}})
    assert gen.status_code == 202
    r = client.post("/jobs/finetune", json=finetune_body(gen.json()["id"]))
    assert r.status_code == 422 and "has not succeeded" in r.json()["error"]["message"]


def test_pagination_newest_first_with_filters(client):
    ids = [client.post("/jobs/generate", json={"prompt_set": {"size": 4}}).json()["id"] for _ in range(7)]
    seen, after = [], None
    while True:
        params = {"limit": 3} | ({"after": after} if after else {})
        page = client.get("/jobs", params=params).json()
        seen += [j["id"] for j in page["data"]]
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert seen == list(reversed(ids))
    assert client.get("/jobs", params={"type": "finetune"}).json()["data"] == []
    assert len(client.get("/jobs", params={"status": "queued"}).json()["data"]) == 7


def test_idempotency_key_same_body_same_job_other_body_409(client, sent):
    body = {"prompt_set": {"size": 4}}
    first = client.post("/jobs/generate", json=body, headers={"Idempotency-Key": "k1"})
    again = client.post("/jobs/generate", json=body, headers={"Idempotency-Key": "k1"})
    other = client.post("/jobs/generate", json={"prompt_set": {"size": 5}}, headers={"Idempotency-Key": "k1"})
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 409
    assert sent == [first.json()["id"]]


def test_cancel_of_a_queued_job_is_immediate(client):
    job = client.post("/jobs/generate", json={"prompt_set": {"size": 4}}).json()
    r = client.post(f"/jobs/{job['id']}/cancel")
    assert r.json()["status"] == "cancelled"
    assert client.post(f"/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
    kinds = [e["message"] for e in client.get(f"/jobs/{job['id']}/events").json()["data"]]
    assert kinds[0] == "queued" and "cancelled" in kinds[-1]


def test_auth_keys_and_isolation(client, settings_env):
    from fastapi.testclient import TestClient

    from api.auth import create_key
    from api.main import create_app
    from api.persistence.db import session_scope
    from api.settings import get_settings

    settings_env.setenv("LIMINAL_REQUIRE_API_KEYS", "true")
    get_settings.cache_clear()
    with session_scope() as s:
        _, alice = create_key(s, "alice")
        _, bob = create_key(s, "bob")
    with TestClient(create_app()) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/jobs").status_code == 401
        assert c.get("/jobs", headers={"Authorization": "Bearer lt_wrong"}).status_code == 401
        a = {"Authorization": f"Bearer {alice}"}
        b = {"Authorization": f"Bearer {bob}"}
        fid = upload(c, jsonl(GOOD_ROWS), headers=a).json()["id"]
        job = c.post("/jobs/generate", json={"prompt_set": {"size": 4}}, headers=a).json()
        assert c.get(f"/jobs/{job['id']}", headers=b).status_code == 404
        assert c.get(f"/files/{fid}", headers=b).status_code == 404
        assert c.post("/jobs/finetune", json=finetune_body(fid), headers=b).status_code == 422
        assert c.get("/jobs", headers=b).json()["data"] == []
        assert [j["id"] for j in c.get("/jobs", headers=a).json()["data"]] == [job["id"]]
    from sqlalchemy import select

    from api.persistence.models import ApiKey, Job

    with session_scope() as s:
        hashes = list(s.scalars(select(ApiKey.key_hash)))
        owners = list(s.scalars(select(Job.owner)))
    assert alice not in hashes and all(alice not in o for o in owners)


def test_artifacts_are_served_only_when_recorded_and_inside_the_job_dir(client, settings_env):
    from api.persistence.db import session_scope
    from api.persistence.models import Job
    from api.settings import get_settings
    from api.storage import job_dir, record_artifacts

    job = client.post("/jobs/generate", json={"prompt_set": {"size": 4}}).json()
    settings = get_settings()
    folder = job_dir(settings, job["id"])
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text('{"ok": true}')
    secret = folder.parent.parent / "secret.txt"
    secret.write_text("outside")
    (folder / "link.txt").symlink_to(secret)
    with session_scope() as s:
        record_artifacts(s, settings, job["id"])
        s.execute(update(Job).where(Job.id == job["id"]).values(status="succeeded"))
    names = [a["name"] for a in client.get(f"/jobs/{job['id']}/artifacts").json()["data"]]
    assert names == ["summary.json"]
    assert client.get(f"/jobs/{job['id']}/artifacts/summary.json").json() == {"ok": True}
    for evil in ["../../secret.txt", "..%2F..%2Fsecret.txt", "%2Fetc%2Fpasswd", "link.txt", "/etc/passwd", "nope.json"]:
        assert client.get(f"/jobs/{job['id']}/artifacts/{evil}").status_code == 404, evil


def test_json_limits(client):
    deep = {"prompt_set": {"size": 4}, "metadata": {}}
    nested: dict = {}
    cursor = nested
    for _ in range(40):
        cursor["a"] = {}
        cursor = cursor["a"]
    deep["extra"] = nested
    assert client.post("/jobs/generate", json=deep).status_code == 422
    big = {"system_prompt": "x" * 2_000_000}
    assert client.post("/jobs/generate", json=big).status_code == 413


def test_nul_characters_unknown_parameters_and_malformed_json_are_4xx(client, sent):
    """Inputs Schemathesis found reaching the database or being ignored: each is refused, nothing is stored."""
    r = client.post("/jobs/generate", json={"system_prompt": "owls\x00"})
    assert r.status_code == 422 and "NUL" in r.json()["error"]["message"]
    r = client.get("/jobs/job-%00")
    assert r.status_code == 422 and r.json()["error"]["field"] == "job_id"
    r = client.get("/jobs", params={"limt": 5})
    assert r.status_code == 422 and r.json()["error"]["field"] == "limt"
    assert client.get("/jobs", params={"after": ""}).status_code == 422
    as_json = {"Content-Type": "application/json"}
    assert client.post("/jobs/generate", content=b"{not json", headers=as_json).status_code == 422
    r = client.post("/jobs/generate", content=b"\xff", headers=as_json)
    assert r.status_code == 400 and r.json()["error"]["code"] == "http_error"
    assert client.get("/jobs").json()["data"] == [] and sent == []


def test_a_failure_after_insert_before_commit_leaves_no_row_and_no_message(settings_env, sent, monkeypatch):
    from fastapi.testclient import TestClient

    import api.routes.jobs as jobs_routes
    from api.main import create_app

    real_add_event = jobs_routes.job_state.add_event

    def add_event_then_fail(session, *args, **kwargs):
        real_add_event(session, *args, **kwargs)
        session.flush()  # the job row and its event are inserted in the open transaction
        raise RuntimeError("injected failure before commit")

    monkeypatch.setattr(jobs_routes.job_state, "add_event", add_event_then_fail)
    with TestClient(create_app(), raise_server_exceptions=False) as c:
        r = c.post("/jobs/generate", json={"prompt_set": {"size": 4}})
        assert r.status_code == 500 and r.json()["error"]["code"] == "internal"
        monkeypatch.undo()
        assert c.get("/jobs").json()["data"] == []
    assert sent == []


def test_api_keys_never_reach_the_logs(client, settings_env, caplog):
    import logging

    from fastapi.testclient import TestClient

    from api.auth import create_key
    from api.main import create_app
    from api.persistence.db import session_scope
    from api.settings import get_settings

    settings_env.setenv("LIMINAL_REQUIRE_API_KEYS", "true")
    get_settings.cache_clear()
    with session_scope() as s:
        _, secret = create_key(s, "logs")
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(), raise_server_exceptions=False) as c:
        headers = {"Authorization": f"Bearer {secret}"}
        c.post("/jobs/generate", json={"prompt_set": {"size": 4}}, headers=headers)
        c.get("/jobs/job-nope", headers=headers)
        c.get("/jobs", headers={"Authorization": f"Bearer {secret}x"})
    assert caplog.records, "the app logged something to look at"
    assert all(secret not in record.getMessage() for record in caplog.records)
