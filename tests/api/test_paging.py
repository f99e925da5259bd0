"""10,000 queued jobs list and page correctly over HTTP on Postgres: every job exactly once, newest first,
ties on created_at broken by id, filters respected, jobs created while paging neither repeat nor push
listed ones out, another owner's jobs never shown, and the queries GET /jobs issues served by an index that the
cursor enters directly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

N_JOBS = 10_000


@pytest.fixture
def many_jobs(client, settings_env):
    """10,000 queued jobs of ``anonymous`` (every fourth one running, timestamps shared by pairs so the id
    breaks ties) and 50 of another owner, inserted in one statement."""
    from api.persistence.db import session_scope
    from api.persistence.models import Job

    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "id": f"job-{i:08d}",
            "owner": "anonymous",
            "type": "finetune",
            "status": "running" if i % 4 == 0 else "queued",
            "spec": {},
            "meta": {},
            "progress": {},
            "attempt": 0,
            "max_attempts": 3,
            "cancel_requested": False,
            "created_at": start + timedelta(seconds=i // 2),
        }
        for i in range(N_JOBS)
    ]
    rows += [row | {"id": f"job-other-{i:04d}", "owner": "key_other"} for i, row in enumerate(rows[:50])]
    with session_scope() as session:
        session.execute(insert(Job), rows)
    return [row["id"] for row in rows[:N_JOBS]]


def page_all(client, **params) -> list[str]:
    seen: list[str] = []
    after = None
    while True:
        page = client.get("/jobs", params=params | ({"after": after} if after else {})).json()
        assert len(page["data"]) <= params.get("limit", 20)
        seen += [job["id"] for job in page["data"]]
        if not page["has_more"]:
            assert page["data"] or not seen, "a page that says has_more is never followed by an empty one"
            return seen
        assert len(page["data"]) == params.get("limit", 20), "only the last page is short"
        after = page["last_id"]


def test_ten_thousand_jobs_page_once_each_newest_first(client, many_jobs):
    newest_first = list(reversed(many_jobs))  # ids rise with created_at, and break its ties the same way
    seen = page_all(client, limit=100)
    assert len(seen) == N_JOBS and len(set(seen)) == N_JOBS
    assert seen == newest_first
    running = page_all(client, limit=100, status="running")
    assert running == [j for j in newest_first if int(j.removeprefix("job-")) % 4 == 0]
    assert page_all(client, limit=100, type="generate") == []


def test_jobs_created_while_paging_do_not_shift_the_pages(client, many_jobs):
    seen: list[str] = []
    after = None
    for _ in range(3):
        page = client.get("/jobs", params={"limit": 100} | ({"after": after} if after else {})).json()
        seen += [job["id"] for job in page["data"]]
        after = page["last_id"]
        client.post("/jobs/generate", json={"prompt_set": {"size": 4}})  # newer than everything listed
    while after:
        page = client.get("/jobs", params={"limit": 100, "after": after}).json()
        seen += [job["id"] for job in page["data"]]
        after = page["last_id"] if page["has_more"] else None
    assert seen == list(reversed(many_jobs)), "the new jobs land before the cursor: no repeat, no skip"


def list_query_plans(client, *requests: dict[str, str | int]) -> list[str]:
    """The Postgres plans of the list queries ``GET /jobs`` issues for each request's parameters."""
    from sqlalchemy import event

    from api.persistence.db import get_engine

    issued: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, parameters, _context, _many) -> None:
        if "FROM jobs" in statement and "ORDER BY jobs.created_at DESC" in statement:
            issued.append((statement, parameters))

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", record)
    try:
        for params in requests:
            assert client.get("/jobs", params=params).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(issued) == len(requests)
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE jobs")
        return ["\n".join(conn.exec_driver_sql(f"EXPLAIN {sql}", params).scalars()) for sql, params in issued]


def test_the_list_queries_start_at_the_cursor_in_the_owner_index(client, many_jobs):
    """Deep in the list, the cursor is an index condition (the scan starts there, it does not filter the 9,000
    newer rows), and no page is sorted in memory; with a status filter an index still serves the query."""
    deep = many_jobs[1000]
    first, cursor, running = list_query_plans(
        client, {"limit": 100}, {"limit": 100, "after": deep}, {"limit": 100, "status": "running"}
    )
    for plan in (first, cursor):
        assert "Index Scan Backward using ix_jobs_owner_created" in plan, plan
        assert "Sort" not in plan and "Seq Scan" not in plan, plan
    cursor_condition = next(line for line in cursor.splitlines() if "Index Cond" in line)
    assert "created_at" in cursor_condition and "(id)" in cursor_condition, cursor
    assert "Index Scan" in running and "Seq Scan" not in running, running
