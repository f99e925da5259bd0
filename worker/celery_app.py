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
# A broker outage (Redis restarted, flushed or unreachable for a while) never ends the worker or its running job:
# it reconnects for as long as it takes, and the job goes on (its claim and heartbeat live in Postgres; its lost
# message cannot be acknowledged, and a redelivery finds nothing to claim).
app.conf.update(
    broker_connection_retry=True,
    broker_connection_max_retries=None,
    worker_cancel_long_running_tasks_on_connection_loss=False,
)
