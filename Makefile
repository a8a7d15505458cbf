# The documented way to do everything. `make help` lists the targets.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | sha1sum | cut -c1-12)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: help install tools demo test test-unit test-integration bench lint format clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: the CPU wheel; an unpinned torch pulls several GB of CUDA packages.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP) ## Create .venv and install the pinned dependencies (offline assets included)

# promtool and prometheus (Debian package `prometheus`) for the tests of deploy/, tmux for the
# terminal test of `tokenbudget top`; installed only when missing, with sudo unless root.
tools: ## Install the system tools the tests need (prometheus, promtool, tmux) when missing
	@command -v promtool >/dev/null && command -v prometheus >/dev/null && command -v tmux >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends prometheus tmux; }
	@promtool --version | head -1

demo: install ## Run the main job: an agent fleet through the embedded broker and a budget worker
	$(PY) -m streams demo

test: install tools ## Run the whole test suite (unit + integration); fails if no test is collected
	$(PY) -m pytest -q

test-unit: install tools ## Unit tests only (pure core, codecs, adapters, deploy/ checks)
	$(PY) -m pytest -q tests/unit

bench: install ## Run the benchmarks and print their figures
	$(PY) bench/core.py
	$(PY) bench/retention.py
	$(PY) bench/summarize.py
	$(PY) bench/memory.py
	$(PY) bench/soak.py

lint: install ## ruff check and format check
	$(PY) -m ruff check streams tests bench
	$(PY) -m ruff format --check streams tests bench

format: install ## Apply ruff fixes and formatting
	$(PY) -m ruff check --fix streams tests bench
	$(PY) -m ruff format streams tests bench

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
