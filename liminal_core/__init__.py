"""The science of liminal-training: specs, models, prompts, filters, sampling, training and evaluation.

Importable on its own: nothing here imports FastAPI, SQLAlchemy or Celery.
"""
