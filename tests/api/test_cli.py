"""The `liminal` command against real Postgres: API keys are created (shown once, stored as a hash), listed and
revoked; unknown options are refused; worker options pass through to Celery."""

from __future__ import annotations

import pytest
from sqlalchemy import select

import api.cli
from api.auth import hash_key
from api.persistence.db import session_scope
from api.persistence.models import ApiKey


def test_keys_create_list_revoke(settings_env, capsys):
    assert api.cli.main(["keys", "create", "alice"]) == 0
    out = capsys.readouterr().out
    key_id = out.split("id: ")[1].split()[0]
    secret = out.split("key: ")[1].split()[0]
    with session_scope() as s:
        row = s.scalars(select(ApiKey).where(ApiKey.id == key_id)).one()
        assert row.key_hash == hash_key(secret) and secret not in (row.id, row.name, row.key_hash)
    assert api.cli.main(["keys", "list"]) == 0
    assert f"{key_id}\talice\tlive" in capsys.readouterr().out
    assert api.cli.main(["keys", "revoke", key_id]) == 0
    assert api.cli.main(["keys", "list"]) == 0
    assert f"{key_id}\talice\trevoked" in capsys.readouterr().out
    assert api.cli.main(["keys", "revoke", key_id]) == 1
    assert f"no live key '{key_id}'" in capsys.readouterr().err


def test_unknown_options_are_refused_except_for_the_worker(monkeypatch, capsys):
    with pytest.raises(SystemExit) as exit_info:
        api.cli.main(["migrate", "--bogus"])
    assert exit_info.value.code == 2 and "--bogus" in capsys.readouterr().err
    passed: list[list[str] | None] = []

    class Finished:
        def wait(self) -> int:
            return 0

    monkeypatch.setattr(api.cli, "start_worker", lambda extra=None: passed.append(extra) or Finished())
    assert api.cli.main(["worker", "--hostname", "gpu1@%h"]) == 0
    assert passed == [["--hostname", "gpu1@%h"]]
