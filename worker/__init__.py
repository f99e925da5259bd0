"""Celery workers: one task that runs a job, the hooks that report it, and the reaper."""
