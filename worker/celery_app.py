"""The Celery app: ``celery -A worker.celery_app worker``. One job at a time per worker process (run one
worker per GPU); each job runs in a fresh child process that exits afterwards, so its memory (and CUDA
context) is freed, and CUDA is never initialised in the worker's parent."""

from __future__ import annotations

from celery import Celery

from api.queue import QUEUE, celery_config
from api.settings import get_settings

app = Celery("liminal", include=["worker.tasks"])
app.conf.update(celery_config(get_settings()))
app.conf.update(worker_concurrency=1, task_queues=None, task_default_queue=QUEUE, worker_hijack_root_logger=False)
