"""Upload files that an API crash left without a committed row are removed when the API starts, once older
than the grace period; committed files and fresh ones (an upload another API process is finishing) stay."""

from __future__ import annotations

import os
import time

from tests.api.helpers import GOOD_ROWS, jsonl


def _age(path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_api_start_sweeps_old_orphaned_uploads_only(client, settings_env, tmp_path):
    from fastapi.testclient import TestClient

    from api.main import create_app

    kept = client.post("/files", files={"file": ("rows.jsonl", jsonl(GOOD_ROWS))}).json()
    files_dir = tmp_path / "artifacts" / "files"
    committed = files_dir / f"{kept['id']}.jsonl"
    orphan = files_dir / "file-000000000000000000000000.jsonl"
    temp = files_dir / ".file-111111111111111111111111.jsonl.tmp-4242"
    fresh = files_dir / "file-222222222222222222222222.jsonl"
    for path in (orphan, temp, fresh):
        path.write_bytes(jsonl(GOOD_ROWS))
    for path in (committed, orphan, temp):
        _age(path, 3600)

    with TestClient(create_app()) as restarted:
        assert sorted(p.name for p in files_dir.iterdir()) == sorted([committed.name, fresh.name])
        again = restarted.get(f"/files/{kept['id']}/content")
        assert again.status_code == 200 and again.content == jsonl(GOOD_ROWS)
