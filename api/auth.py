"""API keys: shown once at creation, stored only as SHA-256 hashes, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.persistence.models import ApiKey, utcnow

ANONYMOUS = "anonymous"
KEY_PREFIX = "lt_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, name: str) -> tuple[str, str]:
    """A new key: returns (key id, the secret itself, which is not stored)."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = "key_" + secrets.token_hex(8)
    session.add(ApiKey(id=key_id, name=name, key_hash=hash_key(secret)))
    session.commit()
    return key_id, secret


def revoke_key(session: Session, key_id: str) -> bool:
    result = session.execute(
        update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=utcnow())
    )
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def verify_key(session: Session, presented: str) -> str | None:
    """The id of the live key matching ``presented``, or None."""
    digest = hash_key(presented)
    row = session.execute(
        select(ApiKey.id, ApiKey.key_hash).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
    ).first()
    if row is None or not hmac.compare_digest(row[1], digest):
        return None
    return str(row[0])
