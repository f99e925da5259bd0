"""Database access: engine and sessions, ORM models, repositories and guarded job-state changes."""
